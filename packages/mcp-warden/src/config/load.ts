/** Loads and validates the configuration file, with errors that name the file, the key and the problem. */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { type WardenConfig, configSchema } from './schema.js';

/** A configuration problem a user can fix: every message names where and what. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.problems = problems;
  }
}

/** The config file used when none is named: `$MCP_WARDEN_CONFIG`, else `./mcp-warden.yaml`. */
export function defaultConfigPath(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return resolve(env['MCP_WARDEN_CONFIG'] ?? 'mcp-warden.yaml');
}

/**
 * Where the config holds secrets: the keys whose values are secrets, and the places (an HTTP
 * upstream's `headers`, a child's `env`, `auth.staticTokens`, where a token written in place of an
 * entry would be) whose keys and values may be. An error there shows a value's type and length,
 * never its text: it goes to the terminal, the logs and CI output, and `${ENV}` is expanded by then.
 */
const SECRET_KEYS = new Set(['sessionSecret', 'metricsToken', 'clientSecret', 'initialAccessToken', 'password', 'secret', 'token', 'apiKey']);
const SECRET_PLACES = new Set(['headers', 'env', 'staticTokens']);

function isSecretPath(path: readonly PropertyKey[]): boolean {
  return path.some((key) => typeof key === 'string' && (SECRET_KEYS.has(key) || SECRET_PLACES.has(key)));
}

function describe(value: unknown, secret = false): string {
  if (secret && (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')) {
    return `a ${typeof value}${typeof value === 'string' ? ` of ${value.length} characters` : ''} (not shown: a secret)`;
  }
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  // A URL's user information (redis://:password@host, postgres://user:password@host) is never
  // echoed: everything up to the last '@' goes, since an invalid URL's password may hold '/' or '@'.
  // Nor its query or fragment (`?api_key=…`).
  const shown = typeof value === 'string' ? value.replace(/^([a-z][a-z0-9+.-]*:\/\/).*@/is, '$1***@').replace(/^([a-z][a-z0-9+.-]*:\/\/[^?#]*)[?#].*$/is, '$1?***') : value;
  return `${typeof value} ${JSON.stringify(shown)}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/** Replaces `${VAR}` in every string; a missing variable is a problem, named with its key path. */
function expandEnv(value: unknown, env: Readonly<Record<string, string | undefined>>, path: string, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
      const found = env[name];
      if (found === undefined) problems.push(`${path}: environment variable ${name} is not set`);
      return found ?? '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, `${path}[${i}]`, problems));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, path === '' ? k : `${path}.${k}`, problems)]));
  }
  return value;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out === '' ? String(key) : `.${String(key)}`;
  return out === '' ? '(top level)' : out;
}

/**
 * For a value no branch of a union accepts, the branch that accepted its type says most (a list of
 * verbs with one misspelt is better described by the list branch than by "invalid input").
 */
function unionBranch(issue: z.core.$ZodIssueInvalidUnion): readonly z.core.$ZodIssue[] | undefined {
  const typed = issue.errors.filter((branch) => !branch.some((i) => i.code === 'invalid_type' && i.path.length === 0));
  return typed.length === 1 ? typed[0] : undefined;
}

function issueMessages(file: string, raw: unknown, issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'invalid_union') {
    const branch = unionBranch(issue);
    if (branch !== undefined) return branch.flatMap((i) => issueMessages(file, raw, { ...i, path: [...issue.path, ...i.path] }));
  }
  return [issueMessage(file, raw, issue)];
}

function issueMessage(file: string, raw: unknown, issue: z.core.$ZodIssue): string {
  const found = valueAt(raw, issue.path);
  const secret = isSecretPath(issue.path);
  let expected = issue.message;
  if (issue.code === 'unrecognized_keys') {
    return `${file}: ${formatPath(issue.path)}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  }
  if (issue.code === 'invalid_key') {
    // The path ends with the key: what was found is the key, and the key's own issues say what was expected.
    const key = String(issue.path[issue.path.length - 1]);
    const wanted = issue.issues.map((i) => i.message).join('; ');
    // A key under headers or env may be a name and its secret written as one (`Authorization=Bearer …`,
    // `API_KEY: sk-…` without the space): shown up to the first '=', ':' or space only.
    const cut = key.search(/[=:\s]/);
    const found =
      isSecretPath(issue.path.slice(0, -1)) && cut >= 0
        ? `key ${JSON.stringify(key.slice(0, cut))} followed by ${key.length - cut} characters (not shown: they may hold a secret)`
        : `key ${JSON.stringify(key)}`;
    const where = formatPath(issue.path.slice(0, -1));
    return `${file}: ${where}: ${wanted === '' ? 'invalid key' : wanted}, found ${found}`;
  }
  if (issue.code === 'invalid_type') expected = `expected ${issue.expected}`;
  if (issue.code === 'invalid_value') expected = `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  return `${file}: ${formatPath(issue.path)}: ${expected}, found ${describe(found, secret)}`;
}

/** Validates configuration text (YAML); `file` names it in errors. Relative store paths resolve against the file. */
export function parseConfig(text: string, file: string, env: Readonly<Record<string, string | undefined>> = process.env): WardenConfig {
  const document = parseDocument(text, { prettyErrors: true });
  if (document.errors.length > 0) {
    throw new ConfigError(document.errors.map((e) => `${file}: line ${e.linePos?.[0].line ?? '?'}: ${e.message.split('\n')[0]}`));
  }
  const problems: string[] = [];
  const raw = expandEnv(document.toJS() ?? {}, env, '', problems);
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `${file}: ${p}`));
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.flatMap((issue) => issueMessages(file, raw, issue)));
  const config = parsed.data;
  if (config.store.type === 'sqlite' && config.store.path !== ':memory:' && !isAbsolute(config.store.path)) {
    config.store.path = resolve(dirname(resolve(file)), config.store.path);
  }
  return config;
}

/** Reads and validates a configuration file. */
export function loadConfig(file: string, env: Readonly<Record<string, string | undefined>> = process.env): WardenConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError([
      code === 'ENOENT'
        ? `${file}: no such file. Run "mcp-warden init" to create one, or pass --config <file>.`
        : `${file}: cannot be read (${code ?? 'error'})`,
    ]);
  }
  return parseConfig(text, file, env);
}
