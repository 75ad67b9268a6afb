/**
 * Test harness for the authorization server: a real node:http server on 127.0.0.1 calling
 * `handle()`, a user directory in memory that records its calls, and a browser stand-in (fetch with
 * a cookie jar, redirects followed by hand) that signs in and consents through the HTML forms.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, fetch as undiciFetch } from 'undici';
import { expect } from 'vitest';
import { type AuthorizationServerConfig, configSchema } from '../../src/config/schema.js';
import { type AuthorizationServer, type UserDirectory, createAuthorizationServer } from '../../src/oauth/authorization-server.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { Store } from '../../src/store/types.js';
import type { LoginLimiter } from '../../src/ratelimit/login-limiter.js';
import type { LimiterBackend } from '../../src/ratelimit/backend.js';

export const PASSWORD = 'correct horse battery staple';
export const SCOPES = { 'mcp:read': ['reader'], 'mcp:write': ['writer'] } as const;

interface TestUser {
  id: string;
  username: string;
  roles: string[];
  disabled: boolean;
}

/** A user directory in memory: alice (reader, writer) and bob (reader). Records every call. */
export class TestUsers implements UserDirectory {
  readonly calls: string[] = [];
  readonly users = new Map<string, TestUser>([
    ['usr_alice', { id: 'usr_alice', username: 'alice', roles: ['reader', 'writer'], disabled: false }],
    ['usr_bob', { id: 'usr_bob', username: 'bob', roles: ['reader'], disabled: false }],
  ]);

  async authenticate(username: string, password: string): Promise<{ id: string; username: string; roles: readonly string[] } | undefined> {
    this.calls.push(`authenticate:${username}`);
    const user = [...this.users.values()].find((u) => u.username === username);
    // Like the real service: one comparison whether or not the user exists.
    const ok = createHash('sha256').update(password).digest('hex') === createHash('sha256').update(PASSWORD).digest('hex');
    return user !== undefined && ok && !user.disabled ? { id: user.id, username: user.username, roles: user.roles } : undefined;
  }

  async get(id: string): Promise<TestUser | undefined> {
    this.calls.push(`get:${id}`);
    const user = this.users.get(id);
    return user === undefined ? undefined : { ...user };
  }

  async upsertFederated(issuer: string, subject: string, username: string, roles: readonly string[]): Promise<{ id: string; username: string; roles: readonly string[] }> {
    this.calls.push(`upsertFederated:${issuer}:${subject}`);
    const id = `usr_fed_${subject}`;
    this.users.set(id, { id, username, roles: [...roles], disabled: false });
    return { id, username, roles };
  }
}

/** `auth.oauth.authorizationServer` with the schema's defaults, overridden. */
export function asConfig(overrides: Record<string, unknown> = {}): AuthorizationServerConfig {
  const parsed = configSchema.parse({
    upstreams: {},
    auth: { oauth: { scopes: SCOPES, authorizationServer: { enabled: true, ...overrides } } },
  } as unknown);
  return parsed.auth.oauth.authorizationServer;
}

export interface RunningAs {
  readonly base: string;
  readonly as: AuthorizationServer;
  readonly store: Store;
  readonly users: TestUsers;
  readonly logs: { level: string; object: object; message?: string }[];
  /** The MCP URL tokens may be minted for. */
  readonly resource: string;
  close(): Promise<void>;
}

const running: RunningAs[] = [];

/**
 * One connection pool per running server, closed with it: a server restarted on the same port
 * (as-persistence) must never be sent a request over a kept-alive socket of its predecessor, which
 * fails with "other side closed" when the old server's FIN has not been read yet (seen once in a full run).
 */
const pools = new Map<string, Agent>();

function serverFetch(url: string, init: RequestInit): Promise<Response> {
  const pool = pools.get(new URL(url).origin);
  if (pool === undefined) return fetch(url, init);
  return undiciFetch(url, { ...(init as object), dispatcher: pool }) as unknown as Promise<Response>;
}

/** Closes every server started by {@link startAs}. */
export async function closeAll(): Promise<void> {
  for (const r of running.splice(0)) await r.close();
}

/** Starts an authorization server on 127.0.0.1 with its own HTTP server. */
export async function startAs(
  options: { config?: Record<string, unknown>; store?: Store; users?: TestUsers; directory?: UserDirectory; fetch?: typeof fetch; keepStoreOpen?: boolean; port?: number; loginLimiter?: LoginLimiter; limiters?: LimiterBackend } = {},
): Promise<RunningAs> {
  const store = options.store ?? createMemoryStore();
  await store.migrate();
  const users = options.users ?? new TestUsers();
  const holder: { as?: AuthorizationServer } = {};
  const server: Server = createServer((req, res) => {
    if (holder.as === undefined || !holder.as.handle(req, res)) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not the authorization server');
    }
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  pools.set(base, new Agent());
  const logs: RunningAs['logs'] = [];
  const log = (level: string) => (object: object, message?: string) => logs.push({ level, object, ...(message === undefined ? {} : { message }) });
  const started = await createAuthorizationServer({
    issuer: base,
    config: asConfig(options.config),
    scopes: SCOPES,
    resources: () => [`${base}/mcp/everything`, `${base}/mcp/other`],
    store,
    users: options.directory ?? users,
    logger: { info: log('info'), warn: log('warn'), error: log('error') },
    ...(options.limiters === undefined ? {} : { limiters: options.limiters }),
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
    ...(options.loginLimiter === undefined ? {} : { loginLimiter: options.loginLimiter }),
  });
  holder.as = started;
  const result: RunningAs = {
    base,
    as: started,
    store,
    users,
    logs,
    resource: `${base}/mcp/everything`,
    close: async () => {
      const index = running.indexOf(result);
      if (index >= 0) running.splice(index, 1);
      const pool = pools.get(base);
      pools.delete(base);
      await pool?.close();
      await started.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (options.keepStoreOpen !== true) await store.close();
    },
  };
  running.push(result);
  return result;
}

/** A browser stand-in: a cookie jar over fetch, redirects left to the caller. */
export class Browser {
  readonly #cookies = new Map<string, string>();

  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.#cookies.size > 0) headers.set('cookie', [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const response = await serverFetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = (pair as string).indexOf('=');
      const name = (pair as string).slice(0, eq).trim();
      const value = (pair as string).slice(eq + 1).trim();
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
    return response;
  }

  /** Posts a form. */
  async post(url: string, form: Record<string, string>): Promise<Response> {
    return this.fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
  }
}

/** A PKCE pair (RFC 7636 §4.1–4.2). */
export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** The CSRF token of the form on a page. */
export function csrfOf(html: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(html);
  if (match === null) throw new Error(`no csrf field on the page: ${html.slice(0, 500)}`);
  return match[1] as string;
}

/** The form's action on a page. */
export function actionOf(html: string): string {
  const match = /<form method="post" action="([^"]+)"/.exec(html);
  if (match === null) throw new Error('no form on the page');
  return match[1] as string;
}

/** Registers a public client by DCR (RFC 7591), as the MCP SDK does. */
export async function registerClient(base: string, metadata: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<{ client_id: string; redirect_uri: string }> {
  const redirect = 'http://127.0.0.1:33418/callback';
  const response = await serverFetch(`${base}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({
      client_name: 'Test MCP client',
      redirect_uris: [redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      ...metadata,
    }),
  });
  const body = (await response.json()) as { client_id: string };
  expect(response.status, JSON.stringify(body)).toBe(201);
  return { client_id: body.client_id, redirect_uri: redirect };
}

export interface AuthorizeOptions {
  readonly clientId: string;
  readonly redirectUri: string;
  readonly scope?: string;
  readonly resource?: string;
  readonly challenge?: string;
  readonly challengeMethod?: string;
  readonly state?: string;
  readonly username?: string;
  readonly extra?: Record<string, string>;
}

/** The authorization URL. */
export function authorizeUrl(base: string, o: AuthorizeOptions): string {
  const url = new URL(`${base}/oauth/authorize`);
  url.searchParams.set('client_id', o.clientId);
  url.searchParams.set('redirect_uri', o.redirectUri);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('scope', o.scope ?? 'mcp:read');
  url.searchParams.set('state', o.state ?? 'st-123');
  if (o.resource !== undefined) url.searchParams.set('resource', o.resource);
  if (o.challenge !== undefined) url.searchParams.set('code_challenge', o.challenge);
  if (o.challengeMethod !== undefined) url.searchParams.set('code_challenge_method', o.challengeMethod);
  for (const [k, v] of Object.entries(o.extra ?? {})) url.searchParams.set(k, v);
  return url.href;
}

/** What a step of the flow showed. */
export interface FlowStep {
  readonly url: string;
  readonly status: number;
  readonly html?: string;
}

/**
 * Runs an authorization through the pages: signs in when asked, consents when asked, until the
 * browser is sent to the redirect URI. Returns that URL and the pages seen.
 */
export async function authorize(browser: Browser, base: string, o: AuthorizeOptions, decision: 'allow' | 'deny' = 'allow'): Promise<{ callback: URL; pages: FlowStep[] }> {
  const pages: FlowStep[] = [];
  let response = await browser.fetch(authorizeUrl(base, o));
  for (let hops = 0; hops < 12; hops++) {
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location !== null) {
      const next = new URL(location, base);
      if (next.href.startsWith(o.redirectUri)) return { callback: next, pages };
      response = await browser.fetch(next.href);
      continue;
    }
    const html = await response.text();
    pages.push({ url: response.url, status: response.status, html });
    if (response.status !== 200) throw new Error(`unexpected ${response.status}: ${html.slice(0, 800)}`);
    if (html.includes('name="password"')) {
      response = await browser.post(new URL(actionOf(html), base).href, { csrf: csrfOf(html), username: o.username ?? 'alice', password: PASSWORD });
    } else if (html.includes('name="decision"')) {
      response = await browser.post(new URL(actionOf(html), base).href, { csrf: csrfOf(html), decision });
    } else {
      throw new Error(`unexpected page: ${html.slice(0, 800)}`);
    }
  }
  throw new Error('too many redirects');
}

/** Posts to the token endpoint; returns status and JSON body. */
export async function tokenRequest(base: string, params: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, any> }> {
  const response = await serverFetch(`${base}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(params).toString(),
  });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

/** The claims of a JWT (unverified: tests verify with jose separately where it matters). */
export function claimsOf(jwt: string): Record<string, any> {
  return JSON.parse(Buffer.from(jwt.split('.')[1] as string, 'base64url').toString('utf8')) as Record<string, any>;
}

export function headerOf(jwt: string): Record<string, any> {
  return JSON.parse(Buffer.from(jwt.split('.')[0] as string, 'base64url').toString('utf8')) as Record<string, any>;
}

/** Registers a client, authorizes with PKCE for `resource`, and redeems the code. */
export async function fullFlow(
  as: RunningAs,
  options: { browser?: Browser; scope?: string; client?: { client_id: string; redirect_uri: string } } = {},
): Promise<{ tokens: Record<string, any>; client: { client_id: string; redirect_uri: string }; browser: Browser; pages: FlowStep[] }> {
  const browser = options.browser ?? new Browser();
  const client = options.client ?? (await registerClient(as.base));
  const { verifier, challenge } = pkce();
  const { callback, pages } = await authorize(browser, as.base, {
    clientId: client.client_id,
    redirectUri: client.redirect_uri,
    resource: as.resource,
    challenge,
    challengeMethod: 'S256',
    ...(options.scope === undefined ? {} : { scope: options.scope }),
  });
  const code = callback.searchParams.get('code');
  expect(code, callback.href).not.toBeNull();
  const { status, body } = await tokenRequest(as.base, {
    grant_type: 'authorization_code',
    code: code as string,
    redirect_uri: client.redirect_uri,
    client_id: client.client_id,
    code_verifier: verifier,
    resource: as.resource,
  });
  expect(status, JSON.stringify(body)).toBe(200);
  return { tokens: body, client, browser, pages };
}
