/** The commented configuration `mcp-warden init` writes. Every key is documented in docs/configuration.md. */
export const CONFIG_TEMPLATE = `# mcp-warden configuration. Check it with: mcp-warden config check
# Strings may reference environment variables as \${NAME}; keep secrets out of this file.

# Where keys and the audit log live. SQLite (a single file, relative to this file) is the default;
# for several gateway instances use PostgreSQL:
#   store: { type: postgres, url: \${DATABASE_URL} }
store:
  type: sqlite
  path: .warden/warden.db

auth:
  # Managed API keys (mcp-warden keys create ...). Stored only as hashes.
  apiKeys:
    enabled: true
    # How long a verified key is trusted before it is read again. Revocations take effect at once.
    cacheTtl: 30s
  # Static tokens, from the environment or as SHA-256 hashes (never inline):
  #   - { id: ci-bot, tokenEnv: CI_BOT_TOKEN, roles: [reader] }
  staticTokens: []
  # Failed authentications allowed per client address and per key id before a 429.
  rateLimit:
    perAddress: { attempts: 20, window: 1m, block: 5m }
    perKey: { attempts: 10, window: 1m, block: 15m }
    # With several gateway instances, keep the counters in Redis so a block holds on all of them:
    # redis: { url: \${REDIS_URL} }

# Roles: read = read-only tools, resources, prompts; write adds non-destructive tools;
# delete adds destructive or unannotated tools. Patterns refine them; deny wins:
#   reader: { verbs: [read], tools: { deny: ["secret_*"] }, resources: { allow: ["file:///docs/**"] } }
roles:
  admin: [read, write, delete]
  reader: [read]

audit:
  # database (hash-chained, checked by "mcp-warden audit verify"), stdout, or { jsonl: path }
  sinks: [database]
  queue:
    capacity: 10000     # events waiting to be written
    batchSize: 500
    flushInterval: 50ms # the most a crash can lose
    onFull: reject      # reject: answer 503 rather than lose events; drop: keep serving, count drops
  # retention: 90d      # "mcp-warden audit prune" removes older events, keeping the chain checkable
  # Tools (globs) whose arguments are recorded, with secret-looking fields redacted:
  recordArguments: []
`;
