/**
 * The configuration file (YAML), validated with zod. `config/load.ts` turns zod's issues into
 * precise errors (file, key path, what was expected, what was found). `${VAR}` references in strings
 * are replaced from the environment before validation, so secrets never need to be inline.
 */
import { z } from 'zod';
import { parseDuration } from './duration.js';

const duration = z
  .string()
  .refine((v) => parseDuration(v) !== undefined, { message: 'expected a duration such as 500ms, 30s, 15m, 24h or 30d' })
  .transform((v) => parseDuration(v) as number);

/** 24 days: a Node timer keeps at most 2^31-1 ms (24.8 days); a longer one fires at once. */
const MAX_TIMER_MS = 24 * 86_400_000;

/**
 * A duration a timer waits: at most 24 days, and above 0 unless `zero` (0: at once) is allowed.
 */
function timerDurationOf(zero: boolean) {
  return z
    .string()
    .refine(
      (v) => {
        const ms = parseDuration(v);
        return ms !== undefined && (zero ? ms >= 0 : ms > 0) && ms <= MAX_TIMER_MS;
      },
      { message: zero ? 'expected a duration of at most 24d, such as 0s, 500ms or 10s' : 'expected a duration above 0 and at most 24d, such as 30s or 5m' },
    )
    .transform((v) => parseDuration(v) as number);
}

/** A duration a timer waits: above 0 and at most 24 days. */
const timerDuration = timerDurationOf(false);
/** A duration a timer waits that may be 0 (at once): at most 24 days. */
const waitDuration = timerDurationOf(true);

const verb = z.enum(['read', 'write', 'delete']);
const patterns = z.strictObject({ allow: z.array(z.string().min(1)).optional(), deny: z.array(z.string().min(1)).optional() });
const role = z.union([
  z.array(verb),
  z.strictObject({
    verbs: z.array(verb).optional(),
    tools: patterns.optional(),
    resources: patterns.optional(),
    prompts: patterns.optional(),
    methods: patterns.optional(),
  }),
]);

const store = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('sqlite'), path: z.string().min(1).default('.warden/warden.db') }),
  z.strictObject({ type: z.literal('postgres'), url: z.string().min(1), schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'expected a lower-case SQL identifier (a-z, 0-9 and _, at most 63)').optional(), maxConnections: z.number().int().positive().optional() }),
  z.strictObject({ type: z.literal('memory') }),
]);

const limit = z.strictObject({ attempts: z.number().int().positive(), window: duration, block: duration });

const staticToken = z
  .strictObject({
    id: z.string().min(1),
    tokenEnv: z.string().min(1).optional(),
    sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected 64 hex digits').optional(),
    roles: z.array(z.string()),
    scopes: z.array(z.string()).optional(),
  })
  .refine((t) => (t.tokenEnv === undefined) !== (t.sha256 === undefined), { message: 'expected exactly one of tokenEnv or sha256 (no inline tokens)' });

const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'expected a header name');

/** One claim → roles rule: the claim's value(s) (a string, a space-separated string or a list), each mapped to roles. */
const claimRoles = z.strictObject({
  /** Dotted path of the claim, e.g. `groups`, `roles` (Entra app roles), `realm_access.roles` (Keycloak). */
  claim: z.string().min(1),
  /** Claim value → mcp-warden roles. Values not listed grant nothing. Absent: the values are role names. */
  values: z.record(z.string(), z.array(z.string().min(1))).optional(),
});

/** The same rule with every value mapped explicitly (federated logins: an upstream's group names are not our roles). */
const claimRolesMapped = z.strictObject({ claim: z.string().min(1), values: z.record(z.string(), z.array(z.string().min(1))) });

const asymmetricAlg = z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']);

/** A token issuer the gateway trusts: an identity provider's JWTs (JWKS) and/or opaque tokens (introspection). */
const oauthIssuer = z
  .strictObject({
    /** A short name for logs, audit and principal ids (`<name>:<sub>`). */
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'expected a lower-case name (letters, digits, - and _)'),
    /** The exact `iss` value its tokens carry (and, for discovery, its issuer identifier). */
    issuer: z.url({ protocol: /^https?$/ }),
    /** Where its signing keys are; default: `jwks_uri` from its RFC 8414 / OIDC discovery document. */
    jwksUri: z.url({ protocol: /^https?$/ }).optional(),
    /**
     * Accepted `aud` values. Default: the canonical URL of the protected path (RFC 8707), e.g.
     * `https://gw.example/mcp/everything`. Set this only for IdPs that cannot mint resource URIs
     * (an Entra app ID URI such as `api://…`).
     */
    audience: z.array(z.string().min(1)).min(1).optional(),
    /** Signature algorithms accepted (asymmetric only: a shared-secret HS256 is refused by design). */
    algorithms: z.array(asymmetricAlg).min(1).default(['RS256', 'PS256', 'ES256', 'EdDSA']),
    /** Leeway for exp/nbf/iat. */
    clockSkew: duration.default(30_000),
    /** `rfc9068`: require `typ: at+jwt` and the profile's claims (RFC 9068 §2.2, §4). */
    profile: z.enum(['jwt', 'rfc9068']).default('jwt'),
    /** After fetching its keys, no new fetch for an unknown `kid` (key rotation) before this long. */
    jwksCooldown: duration.default(30_000),
    /** Opaque tokens: RFC 7662 introspection with this client's credentials. */
    introspection: z
      .strictObject({
        endpoint: z.url({ protocol: /^https?$/ }).optional(),
        clientId: z.string().min(1),
        clientSecret: z.string().min(1),
        /** Upper bound on how long an answer is reused (never past the token's `exp`). */
        cacheTtl: duration.default(60_000),
      })
      .optional(),
    /** Claims → roles and scopes. */
    claims: z
      .strictObject({
        subject: z.string().min(1).default('sub'),
        /** Where scopes are: `scope` (space-separated, RFC 9068/8693) and `scp` (Entra, string or list) by default. */
        scopes: z.array(z.string().min(1)).default(['scope', 'scp']),
        roles: z.array(claimRoles).default([]),
        /** Roles every principal of this issuer gets. */
        defaultRoles: z.array(z.string().min(1)).default([]),
      })
      .prefault({}),
  });

/** The built-in OAuth 2.1 authorization server (oidc-provider), under the gateway's public URL. */
const authorizationServer = z.strictObject({
  enabled: z.boolean().default(false),
  /** Dynamic client registration (RFC 7591): open to anyone, with an initial access token, or off. */
  registration: z
    .strictObject({
      mode: z.enum(['open', 'token', 'off']).default('open'),
      /** For `token` mode: the initial access token (from ${ENV}). */
      initialAccessToken: z.string().min(16, 'expected at least 16 characters').optional(),
    })
    .prefault({}),
  /** Client ID metadata documents (URL-shaped client ids fetched over https). */
  clientIdMetadataDocuments: z.boolean().default(true),
  accessTokenTtl: duration.default(600_000),
  refreshTokenTtl: duration.default(14 * 86_400_000),
  /** How long a login session at the authorization server lasts. */
  sessionTtl: duration.default(86_400_000),
  /** Pre-registered clients, e.g. machine clients using client credentials. Secrets from ${ENV}. */
  clients: z
    .array(
      z.strictObject({
        clientId: z.string().min(1),
        clientSecret: z.string().min(16, 'expected at least 16 characters').optional(),
        clientName: z.string().optional(),
        grantTypes: z.array(z.enum(['authorization_code', 'refresh_token', 'client_credentials'])).default(['authorization_code', 'refresh_token']),
        redirectUris: z.array(z.string()).default([]),
        /** Scopes the client may ask for (default: all configured scopes). */
        scopes: z.array(z.string()).optional(),
        /** For client credentials: the roles the machine principal gets. */
        roles: z.array(z.string()).default([]),
      }),
    )
    .default([]),
  /** "Log in with" an upstream OIDC provider; its groups (or another claim) mapped to roles. */
  federation: z
    .strictObject({
      name: z.string().min(1).default('Single sign-on'),
      issuer: z.url({ protocol: /^https?$/ }),
      clientId: z.string().min(1),
      clientSecret: z.string().min(1),
      scopes: z.array(z.string()).default(['openid', 'profile', 'email']),
      roles: z.array(claimRolesMapped).default([]),
      defaultRoles: z.array(z.string()).default([]),
    })
    .optional(),
});

/** OAuth 2.1: the MCP authorization spec as a resource server, trusted issuers, and the built-in authorization server. */
const oauth = z.strictObject({
  /**
   * Scope → the roles whose permissions it grants. An OAuth token may do what both its principal's
   * roles and its scopes allow; an action its roles allow but its scopes do not answers 403
   * `insufficient_scope` naming a scope that would (step-up).
   */
  scopes: z.record(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'expected a scope token (RFC 6749 §3.3)'), z.array(z.string().min(1))).default({}),
  /** Scopes named in the 401 challenge; default: every configured scope. `offline_access` is never challenged. */
  challengeScopes: z.array(z.string()).optional(),
  /** External issuers (IdPs) whose tokens are accepted. */
  issuers: z.array(oauthIssuer).default([]),
  authorizationServer: authorizationServer.prefault({}),
});

const familyPatterns = z
  .strictObject({
    tools: z.array(z.string()).optional(),
    resources: z.array(z.string()).optional(),
    prompts: z.array(z.string()).optional(),
    methods: z.array(z.string()).optional(),
  })
  .optional();

const annotations = z.record(
  z.string(),
  z.strictObject({ readOnlyHint: z.boolean().optional(), destructiveHint: z.boolean().optional(), idempotentHint: z.boolean().optional(), openWorldHint: z.boolean().optional() }),
);

/** What an upstream adds on top of the global policy: role definitions that replace the global ones of the same name there, more deny patterns, annotations. */
const upstreamPolicy = z.strictObject({
  roles: z.record(z.string().min(1), role).optional(),
  deny: familyPatterns,
  toolAnnotations: annotations.optional(),
});

const httpUpstream = z.strictObject({
  type: z.literal('http'),
  url: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }),
  /** Headers sent to the upstream (its own credentials), e.g. { Authorization: "Bearer ${UPSTREAM_TOKEN}" }. */
  headers: z.record(headerName, z.string()).default({}),
  /** How long to wait for the upstream's response headers (a timer: above 0, at most 24 days). */
  timeout: timerDuration.default(30_000),
  /** Send a short-lived JWT the gateway signs (subject, roles, audience = url) in this header. */
  identity: z
    .strictObject({
      header: headerName.default('x-mcp-identity'),
      ttl: duration.default(60_000),
    })
    .optional(),
  policy: upstreamPolicy.optional(),
});

const stdioUpstream = z.strictObject({
  type: z.literal('stdio'),
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  /** The only variables the child gets besides PATH and HOME. */
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name'), z.string()).default({}),
  cwd: z.string().optional(),
  maxSessions: z.number().int().positive().default(32),
  /** Most of them one caller (principal) may hold; default: no limit but `maxSessions`. */
  maxSessionsPerPrincipal: z.number().int().positive().optional(),
  idleTimeout: duration.default(900_000),
  /** How long a request waits for the child's answer. */
  timeout: timerDuration.default(60_000),
  /** How long a 2026-07-28 client's call whose child asked for input (sampling, elicitation, roots) waits for the client's retry. */
  inputTimeout: timerDuration.default(300_000),
  restart: z.strictObject({ maxRestarts: z.number().int().nonnegative().default(3), backoff: waitDuration.default(1_000) }).prefault({}),
  policy: upstreamPolicy.optional(),
});

const server = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8080),
  /** The URL clients use (behind a proxy or TLS terminator); defaults to http://host:port. */
  publicUrl: z.url({ protocol: /^https?$/ }).optional(),
  allowedOrigins: z.array(z.string()).default([]),
  allowedHosts: z.array(z.string()).optional(),
  maxBodyBytes: z.number().int().positive().default(1024 * 1024),
  maxBatchSize: z.number().int().positive().default(100),
  /** Key for signing session ids (at least 32 characters, from ${ENV}); default: a random key kept in the store, shared by instances on one database. */
  sessionSecret: z.string().min(32, 'expected at least 32 characters').optional(),
  /** How long shutdown waits for open streams. */
  shutdownGrace: waitDuration.default(10_000),
  /** A bearer token `GET /metrics` then requires (at least 16 characters, from ${ENV}); without it /metrics is open. */
  metricsToken: z.string().min(16, 'expected at least 16 characters').optional(),
});

const sink = z.union([z.enum(['database', 'stdout']), z.strictObject({ jsonl: z.string().min(1) })]);

/** The validated configuration. */
export const configSchema = z.strictObject({
  store: store.default({ type: 'sqlite', path: '.warden/warden.db' }),
  auth: z
    .strictObject({
      apiKeys: z.strictObject({ enabled: z.boolean().default(true), cacheTtl: duration.default(30_000) }).prefault({}),
      staticTokens: z.array(staticToken).default([]),
      oauth: oauth.prefault({}),
      rateLimit: z
        .strictObject({
          perAddress: limit.default({ attempts: 20, window: 60_000, block: 300_000 }),
          perKey: limit.default({ attempts: 10, window: 60_000, block: 900_000 }),
          /** Keep the counters in Redis, shared by every instance (default: in each process's memory). */
          redis: z
            .strictObject({
              url: z.url({ protocol: /^rediss?$/, error: 'expected a redis:// or rediss:// URL' }),
              keyPrefix: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'expected 1 to 64 letters, digits, _ . : or -').default('mcp-warden'),
            })
            .optional(),
        })
        .prefault({}),
    })
    .prefault({}),
  /** A request rate limit per authenticated caller (off when absent); counters where auth.rateLimit keeps its own. */
  requestRateLimit: z
    .strictObject({
      perPrincipal: z.strictObject({ requests: z.number().int().positive(), window: duration }),
    })
    .optional(),
  roles: z.record(z.string().min(1), role).default({}),
  deny: z
    .strictObject({
      tools: z.array(z.string()).optional(),
      resources: z.array(z.string()).optional(),
      prompts: z.array(z.string()).optional(),
      methods: z.array(z.string()).optional(),
    })
    .optional(),
  toolAnnotations: annotations.optional(),
  server: server.prefault({}),
  upstreams: z
    .record(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'expected a lower-case name (letters, digits, - and _) used in the path /mcp/<name>'), z.discriminatedUnion('type', [httpUpstream, stdioUpstream]))
    .default({}),
  audit: z
    .strictObject({
      sinks: z.array(sink).min(1).default(['database']),
      queue: z
        .strictObject({
          capacity: z.number().int().positive().default(10_000),
          batchSize: z.number().int().positive().default(500),
          flushInterval: timerDuration.default(50),
          onFull: z.enum(['reject', 'drop']).default('reject'),
        })
        .prefault({}),
      retention: duration.optional(),
      recordArguments: z.array(z.string().min(1)).default([]),
    })
    .prefault({}),
});

/** The configuration after validation and defaults. */
export type WardenConfig = z.output<typeof configSchema>;
export type UpstreamConfig = WardenConfig['upstreams'][string];
export type HttpUpstreamConfig = Extract<UpstreamConfig, { type: 'http' }>;
export type StdioUpstreamConfig = Extract<UpstreamConfig, { type: 'stdio' }>;
export type OAuthConfig = WardenConfig['auth']['oauth'];
export type OAuthIssuerConfig = OAuthConfig['issuers'][number];
export type AuthorizationServerConfig = OAuthConfig['authorizationServer'];
export type ClaimRolesConfig = OAuthIssuerConfig['claims']['roles'][number];
