/**
 * The built-in OAuth 2.1 authorization server (draft-ietf-oauth-v2-1), on oidc-provider, under the
 * gateway's public URL. What it does, with the specifications it follows:
 *
 * - Metadata: RFC 8414 at `/.well-known/oauth-authorization-server` and OpenID Connect Discovery at
 *   `/.well-known/openid-configuration`, one issuer; every other endpoint is under `/oauth/`.
 * - Authorization code with PKCE (RFC 7636), S256 only, required of every client.
 * - RFC 9207: `iss` in every authorization response, errors included.
 * - Resource indicators (RFC 8707): a `resource` among the gateway's MCP URLs gives a JWT access
 *   token (RFC 9068, `typ: at+jwt`) whose `aud` is that URL, with `sub`, `client_id`, `scope` and
 *   `roles`; any other resource is `invalid_target`.
 * - Refresh tokens are rotated on every use (OAuth 2.1 §4.3.1); a refresh token used twice revokes
 *   the whole grant (draft-ietf-oauth-security-topics §4.14.2). They are issued to every client
 *   registered with the `refresh_token` grant, whether or not it asks for `offline_access`: the MCP
 *   SDK clients do not ask for it, and MCP 2026-07-28 tells servers not to challenge it.
 * - Client credentials (RFC 6749 §4.4) for pre-registered machine clients; their tokens carry the
 *   client's configured roles.
 * - Dynamic client registration (RFC 7591): open, with an initial access token, or off.
 * - Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document-00, oidc-provider's
 *   `draft-02` experiment): URL client ids fetched with oidc-provider's SSRF-guarded fetch.
 * - Revocation (RFC 7009) and introspection (RFC 7662) for refresh tokens and opaque tokens. JWT
 *   access tokens can be neither revoked nor introspected there (both answer
 *   `unsupported_token_type`): they are self-contained, so they stay valid until they expire
 *   (`accessTokenTtl`, ten minutes by default). To cut access sooner, revoke the refresh token or the
 *   grant (`mcp-warden grants revoke`): no new access token is issued after that.
 * - Redirect URIs must be https, or http on a loopback host (MCP authorization, "Communication
 *   Security"); they are compared exactly (oidc-provider).
 *
 * Its state (grants, sessions, codes, refresh tokens, registered clients, signing keys) lives in the
 * store, so it survives restarts and is shared by instances on one database.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Provider, { type ClientMetadata, type Configuration, type KoaContextWithOIDC, errors } from 'oidc-provider';
import type { AuthorizationServerConfig } from '../config/schema.js';
import type { Store } from '../store/types.js';
import { storeAdapter } from './adapter.js';
import { type Federation, createFederation } from './federation.js';
import { ID_TOKEN_TTL_SECONDS, loadSigningKeys, publicJwk, signingKeyRetentionMs } from './keys.js';
import { count, waitSeconds } from '../ratelimit/auth-limiter.js';
import { type AttemptLimit, type LimiterBackend, memoryBackend } from '../ratelimit/backend.js';
import type { LoginLimiter } from '../ratelimit/login-limiter.js';
import { type ScopeView, newNonce, pageHeaders, renderConsentPage, renderErrorPage, renderLoginPage } from './pages.js';

/** The accounts the authorization server signs people in with (implemented by the users service). */
export interface UserDirectory {
  /** The user when the password is right and the account enabled; undefined otherwise, whatever the reason. */
  authenticate(username: string, password: string): Promise<{ id: string; username: string; roles: readonly string[] } | undefined>;
  get(id: string): Promise<{ id: string; username: string; roles: readonly string[]; disabled: boolean } | undefined>;
  /** Creates or updates the account of a federated identity; absent: federation is unavailable. */
  upsertFederated?(issuer: string, subject: string, username: string, roles: readonly string[]): Promise<{ id: string; username: string; roles: readonly string[] }>;
}

/** A pino-like logger. */
export interface AuthorizationServerLogger {
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}

/** Options of {@link createAuthorizationServer}. */
export interface AuthorizationServerOptions {
  /** The gateway's public URL origin, e.g. `https://gw.example` (no path, no trailing slash): the issuer identifier (RFC 8414 §2). */
  readonly issuer: string;
  /** `auth.oauth.authorizationServer`. */
  readonly config: AuthorizationServerConfig;
  /** `auth.oauth.scopes`: scope → roles. These are the scopes offered, besides `openid` and `offline_access`. */
  readonly scopes: Readonly<Record<string, readonly string[]>>;
  /** The canonical resource URIs (the gateway's MCP URLs) tokens may be minted for; read on every request, so it may change on reload. */
  resources(): readonly string[];
  readonly store: Store;
  readonly users: UserDirectory;
  readonly logger: AuthorizationServerLogger;
  /**
   * Replaces the fetch oidc-provider uses for client ID metadata documents (and federation discovery).
   * For tests only: production keeps oidc-provider's fetch, which refuses loopback and private addresses.
   */
  readonly fetch?: typeof fetch;
  /** Throttles failed sign-ins per address and per name; absent, the login form is not throttled. */
  readonly loginLimiter?: LoginLimiter;
  /**
   * Where open registrations are counted per client address (the gateway's limiter backend: Redis,
   * shared by every instance, when configured). @default this process's memory
   */
  readonly limiters?: LimiterBackend;
}

/** The authorization server, ready to take requests. */
export interface AuthorizationServer {
  readonly issuer: string;
  /**
   * Handles the request if its path belongs to the authorization server (the two metadata URLs and
   * everything under `/oauth/`) and returns true; otherwise returns false without touching `res`.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** The public JWKS that verifies its JWT access tokens (for the resource server, in-process). */
  jwks(): { keys: JsonWebKey[] };
  /** Stops the expiry timer. */
  close(): Promise<void>;
}

/** The form field and CSP-bound secret names in the store. */
const COOKIE_KEY = 'oauth-cookie-key';
const CSRF_KEY = 'oauth-csrf-key';
/** How often expired authorization server records are deleted. */
const PRUNE_INTERVAL_MS = 10 * 60_000;
/** The largest login or consent form read. */
const FORM_LIMIT_BYTES = 8 * 1024;
const AUTHORIZATION_CODE_TTL_SECONDS = 60;
const INTERACTION_TTL_SECONDS = 15 * 60;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

const seconds = (ms: number): number => Math.max(1, Math.floor(ms / 1000));

/** A resource URI in the form tokens name it: no fragment, no trailing slash, lower-case scheme and host (MCP "Canonical Server URI"). */
export function canonicalResource(uri: string): string | undefined {
  const url = URL.parse(uri);
  if (url === null || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.hash !== '' || url.username !== '' || url.password !== '') return undefined;
  const text = url.href;
  return url.pathname !== '/' && text.endsWith('/') ? text.slice(0, -1) : url.search === '' && url.pathname === '/' ? url.origin : text;
}

/** MCP authorization, "Communication Security": redirect URIs are https, or http to a loopback host. */
function isAllowedRedirectUri(uri: unknown): boolean {
  if (typeof uri !== 'string') return false;
  const url = URL.parse(uri);
  if (url === null) return false;
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
}

function validateOptions(options: AuthorizationServerOptions): URL {
  const issuer = URL.parse(options.issuer);
  if (issuer === null || (issuer.protocol !== 'https:' && issuer.protocol !== 'http:') || issuer.origin !== options.issuer) {
    throw new TypeError(`the authorization server's issuer must be a URL origin such as https://gw.example (no path, no trailing slash), got "${options.issuer}"`);
  }
  const { registration, clients } = options.config;
  if (registration.mode === 'token' && registration.initialAccessToken === undefined) {
    throw new TypeError('auth.oauth.authorizationServer.registration.initialAccessToken is required when registration.mode is "token"');
  }
  clients.forEach((client, i) => {
    if (client.grantTypes.includes('client_credentials') && client.clientSecret === undefined) {
      throw new TypeError(`auth.oauth.authorizationServer.clients[${i}].clientSecret is required for the client_credentials grant`);
    }
    if (client.grantTypes.includes('authorization_code') && client.redirectUris.length === 0) {
      throw new TypeError(`auth.oauth.authorizationServer.clients[${i}].redirectUris must not be empty for the authorization_code grant`);
    }
    const unknown = (client.scopes ?? []).filter((s) => !Object.hasOwn(options.scopes, s) && s !== 'openid' && s !== 'offline_access');
    if (unknown.length > 0) throw new TypeError(`auth.oauth.authorizationServer.clients[${i}].scopes: ${unknown.join(', ')} not in auth.oauth.scopes`);
  });
  return issuer;
}

function describeScope(scope: string, scopes: Readonly<Record<string, readonly string[]>>): string {
  if (scope === 'openid') return 'Know who you are (your user id).';
  if (scope === 'offline_access') return 'Keep this access while you are away (until you withdraw it).';
  const roles = scopes[scope] ?? [];
  return roles.length === 0 ? 'A permission with no roles attached.' : `Use MCP servers with the permissions of the role${roles.length > 1 ? 's' : ''} ${roles.join(', ')}.`;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  const type = req.headers['content-type'] ?? '';
  if (!type.toLowerCase().startsWith('application/x-www-form-urlencoded')) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > FORM_LIMIT_BYTES) return undefined;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sendPage(res: ServerResponse, status: number, html: string, nonce: string, formActions: readonly string[] = []): void {
  res.writeHead(status, pageHeaders(nonce, formActions));
  res.end(html);
}

/** Open registrations one client address may make: 30 per ten minutes, then none until the window ends. */
const REGISTRATION_LIMIT: AttemptLimit = { attempts: 30, window: 10 * 60_000, block: 10 * 60_000 };
/** Caps on a client's metadata: what an anonymous registration may store. */
const MAX_CLIENT_NAME = 200;
const MAX_REDIRECT_URIS = 10;
const MAX_URI_LENGTH = 2048;
const MAX_METADATA_BYTES = 16 * 1024;

function sendError(res: ServerResponse, status: number, title: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const nonce = newNonce();
  sendPage(res, status, renderErrorPage({ nonce, title, message }), nonce);
}

/**
 * Shows the error of an authorization request on a page instead of sending it to the client's
 * redirect_uri when the request comes straight to `/oauth/authorize` (before the user has done
 * anything here): anyone may register a client whose redirect_uri they own, and the error redirect
 * would make this server's origin an open redirect (RFC 9700 §4.11.2). A code, and errors after
 * sign-in or consent (`/oauth/authorize/<uid>`), still go to the client.
 */
function pageInsteadOfErrorRedirect(res: ServerResponse, origin: string): void {
  const end = res.end;
  res.end = function patchedEnd(this: ServerResponse, ...args: unknown[]): ServerResponse {
    res.end = end;
    const location = this.getHeader('location');
    if (!this.headersSent && this.statusCode >= 300 && this.statusCode < 400 && typeof location === 'string') {
      let target: URL | undefined;
      try {
        target = new URL(location, origin);
      } catch {
        target = undefined;
      }
      const error = target?.searchParams.get('error') ?? new URLSearchParams(target?.hash.slice(1) ?? '').get('error');
      if (target !== undefined && target.origin !== origin && error !== null) {
        for (const name of ['location', 'content-type', 'content-length']) this.removeHeader(name);
        sendError(this, 400, 'Sign-in could not start', `The application asked for something this server cannot grant (${error.slice(0, 64)}). Go back to the application and try again.`);
        return this;
      }
    }
    return (end as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as typeof res.end;
}

/** Creates the authorization server: loads or creates its keys, then configures oidc-provider. */
export async function createAuthorizationServer(options: AuthorizationServerOptions): Promise<AuthorizationServer> {
  const issuerUrl = validateOptions(options);
  const { config, store, users, logger } = options;
  const configuredScopes = Object.keys(options.scopes);
  const accessTokenTtl = seconds(config.accessTokenTtl);
  const refreshTokenTtl = seconds(config.refreshTokenTtl);
  const sessionTtl = seconds(config.sessionTtl);
  // Retired keys stay published as long as anything they signed may still be checked.
  const keyRetentionMs = signingKeyRetentionMs(config);
  const signingKeys = await loadSigningKeys(store.oauth, keyRetentionMs);
  const cookieKey = await store.secrets.getOrCreate(COOKIE_KEY, () => randomBytes(32).toString('base64url'));
  const csrfKey = await store.secrets.getOrCreate(CSRF_KEY, () => randomBytes(32).toString('base64url'));
  const machineRoles = new Map(config.clients.map((c) => [c.clientId, c.roles]));
  const configuredClients = new Set(config.clients.map((c) => c.clientId));
  const machineClients = new Set(config.clients.filter((c) => c.grantTypes.includes('client_credentials')).map((c) => c.clientId));

  const matchResource = (indicator: string): string | undefined => {
    const wanted = canonicalResource(indicator);
    if (wanted === undefined) return undefined;
    return options.resources().find((r) => canonicalResource(r) === wanted);
  };

  const staticClient = (client: AuthorizationServerConfig['clients'][number]): ClientMetadata => {
    const code = client.grantTypes.includes('authorization_code');
    const scopes = client.scopes ?? configuredScopes;
    return {
      client_id: client.clientId,
      ...(client.clientSecret === undefined ? { token_endpoint_auth_method: 'none' } : { client_secret: client.clientSecret, token_endpoint_auth_method: 'client_secret_basic' }),
      ...(client.clientName === undefined ? {} : { client_name: client.clientName }),
      grant_types: [...client.grantTypes],
      response_types: code ? ['code'] : [],
      redirect_uris: [...client.redirectUris],
      scope: [...new Set([...(code ? ['openid', 'offline_access'] : []), ...scopes])].join(' '),
    };
  };

  const federation: Federation | undefined =
    config.federation === undefined ? undefined : createFederation({ config: config.federation, issuer: options.issuer, users, logger, store: store.oauth, ...(options.fetch === undefined ? {} : { fetch: options.fetch }) });

  const configuration: Configuration = {
    adapter: storeAdapter(store.oauth),
    clients: config.clients.map(staticClient),
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      id_token_signed_response_alg: 'RS256',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    // Browser-based clients may call the token endpoint from the origin of one of their redirect URIs.
    clientBasedCORS: (_ctx, origin, client) => client.redirectUris?.some((uri) => URL.parse(uri)?.origin === origin) ?? false,
    cookies: {
      keys: [cookieKey],
      names: { session: 'mcpw_as_session', interaction: 'mcpw_as_interaction', resume: 'mcpw_as_resume' },
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    claims: { openid: ['sub'] },
    // OAuth 2.1 §1.4: the authorization code flow only (no implicit, no hybrid).
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access', ...configuredScopes],
    jwks: { keys: signingKeys.map((k) => k.jwk) as never },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // A client may introspect its own tokens; a configured confidential client (a resource server)
      // may introspect any. Only a token's own client may revoke it (RFC 7009 §2.1).
      introspection: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId || (client.clientAuthMethod !== 'none' && configuredClients.has(client.clientId)),
      },
      revocation: { enabled: true, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
      userinfo: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      registration: {
        enabled: config.registration.mode !== 'off',
        initialAccessToken: config.registration.mode === 'token' ? (config.registration.initialAccessToken as string) : false,
        issueRegistrationAccessToken: false,
      },
      clientIdMetadataDocument: { enabled: config.clientIdMetadataDocuments, ack: 'draft-02' },
      resourceIndicators: {
        enabled: true,
        // At the token endpoint, a grant for one resource needs no `resource` again (RFC 8707 §2.2).
        // Without `resource` at all (clients that predate RFC 8707 support), the only endpoint when there is one.
        defaultResource: async (_ctx, _client, oneOf) => {
          if (oneOf !== undefined) return oneOf;
          const all = options.resources();
          return all.length === 1 ? all[0] : undefined;
        },
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          const audience = matchResource(indicator);
          if (audience === undefined) throw new errors.InvalidTarget();
          return {
            scope: configuredScopes.join(' '),
            audience,
            accessTokenFormat: 'jwt',
            accessTokenTTL: accessTokenTtl,
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    } as Configuration['features'],
    pkce: { required: () => true },
    rotateRefreshToken: true,
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Refresh tokens outlive the sign-in session: an MCP client keeps working after the browser is closed.
    expiresWithSession: async () => false,
    loadExistingGrant: async (ctx) => {
      // A grant remembered by this browser's session, else the user's latest grant to this client
      // (consent is remembered per user and client, not per browser).
      const client = ctx.oidc.client;
      const session = ctx.oidc.session;
      if (client === undefined || session === undefined) return undefined;
      const known = ctx.oidc.result?.consent?.grantId ?? session.grantIdFor(client.clientId);
      if (known !== undefined) {
        const grant = await ctx.oidc.provider.Grant.find(known);
        if (grant !== undefined) return grant;
      }
      if (session.accountId === undefined) return undefined;
      const grants = await store.oauth.list('Grant', { accountId: session.accountId, clientId: client.clientId });
      const latest = grants.sort((a, b) => Number(b.payload['iat'] ?? 0) - Number(a.payload['iat'] ?? 0))[0];
      return latest === undefined ? undefined : ctx.oidc.provider.Grant.find(latest.id);
    },
    findAccount: async (_ctx, sub) => {
      const user = await users.get(sub);
      if (user === undefined || user.disabled) return undefined;
      return { accountId: user.id, claims: () => ({ sub: user.id }) };
    },
    extraTokenClaims: async (_ctx, token) => {
      if (token.kind === 'ClientCredentials') return { roles: [...(machineRoles.get(token.clientId ?? '') ?? [])] };
      const accountId = (token as { accountId?: string }).accountId;
      if (accountId === undefined) return undefined;
      const user = await users.get(accountId);
      return { roles: user === undefined || user.disabled ? [] : [...user.roles] };
    },
    extraClientMetadata: {
      // RFC 7591 §2 software statement fields; the validator runs for every client (registered,
      // configured or from a metadata document) and enforces the redirect and grant rules.
      properties: ['software_id', 'software_version'],
      validator: (_ctx, key, value, metadata) => {
        if (value !== undefined && typeof value !== 'string') throw new errors.InvalidClientMetadata(`${key} must be a string`);
        if (key !== 'software_id') return;
        const redirects: unknown = metadata.redirect_uris;
        // What anyone may store by registering is bounded.
        if (typeof metadata.client_name === 'string' && metadata.client_name.length > MAX_CLIENT_NAME) throw new errors.InvalidClientMetadata(`client_name must be at most ${MAX_CLIENT_NAME} characters`);
        if (Array.isArray(redirects) && (redirects.length > MAX_REDIRECT_URIS || redirects.some((uri) => String(uri).length > MAX_URI_LENGTH))) {
          throw new errors.InvalidRedirectUri(`at most ${MAX_REDIRECT_URIS} redirect_uris of at most ${MAX_URI_LENGTH} characters each`);
        }
        if (Buffer.byteLength(JSON.stringify(metadata)) > MAX_METADATA_BYTES) throw new errors.InvalidClientMetadata(`the client metadata must be at most ${MAX_METADATA_BYTES / 1024} KiB`);
        if (Array.isArray(redirects) && !redirects.every(isAllowedRedirectUri)) {
          throw new errors.InvalidRedirectUri('redirect_uris must use https, or http with a loopback host (localhost, 127.0.0.1, [::1])');
        }
        const grants: unknown = metadata.grant_types;
        if (Array.isArray(grants) && grants.includes('client_credentials') && !machineClients.has(String(metadata.client_id))) {
          throw new errors.InvalidClientMetadata('client_credentials is only for clients configured in auth.oauth.authorizationServer.clients');
        }
        // A registered (or metadata-document) client's `scope` is what it asked for first, not a
        // ceiling: MCP clients register with the first challenge's scope and ask for more on a
        // step-up (MCP authorization, "Scope Selection Strategy"), and the user consents per scope
        // anyway. Only configured clients keep `scopes` as a limit.
        if (!configuredClients.has(String(metadata.client_id))) delete metadata.scope;
        // A client ID metadata document must name the client (MCP authorization ≥ 2025-11-25,
        // "Client ID Metadata Documents": client_id, client_name and redirect_uris are required).
        if (/^https:\/\//.test(String(metadata.client_id)) && !configuredClients.has(String(metadata.client_id))) {
          if (typeof metadata.client_name !== 'string' || metadata.client_name.trim() === '') throw new errors.InvalidClientMetadata('client_name is required in a client ID metadata document');
          if (!Array.isArray(redirects) || redirects.length === 0) throw new errors.InvalidClientMetadata('redirect_uris is required in a client ID metadata document');
        }
      },
    },
    ttl: {
      AccessToken: accessTokenTtl,
      ClientCredentials: accessTokenTtl,
      AuthorizationCode: AUTHORIZATION_CODE_TTL_SECONDS,
      RefreshToken: refreshTokenTtl,
      Grant: Math.max(refreshTokenTtl, sessionTtl),
      Session: sessionTtl,
      Interaction: INTERACTION_TTL_SECONDS,
      IdToken: ID_TOKEN_TTL_SECONDS,
    },
    interactions: { url: async (_ctx, interaction) => `/oauth/interaction/${interaction.uid}` },
    routes: {
      authorization: '/oauth/authorize',
      token: '/oauth/token',
      registration: '/oauth/register',
      jwks: '/oauth/jwks',
      revocation: '/oauth/revoke',
      introspection: '/oauth/introspect',
      userinfo: '/oauth/userinfo',
      end_session: '/oauth/session/end',
      pushed_authorization_request: '/oauth/par',
      code_verification: '/oauth/device',
      device_authorization: '/oauth/device/auth',
      backchannel_authentication: '/oauth/backchannel',
      challenge: '/oauth/challenge',
      credential: '/oauth/credential',
    } as Configuration['routes'],
    renderError: async (ctx, out) => {
      const nonce = newNonce();
      ctx.set(pageHeaders(nonce));
      ctx.type = 'html';
      const detail = typeof out.error_description === 'string' ? `: ${out.error_description}` : '';
      ctx.body = renderErrorPage({ nonce, title: 'Sign-in cannot continue', message: `${String(out.error)}${detail}. Go back to the application and try again.` });
    },
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
  };

  const provider = new Provider(options.issuer, configuration);
  // The issuer is the public URL; handle() sets the forwarded headers from it, so the URLs the
  // provider builds never depend on what a client put in Host or X-Forwarded-*.
  provider.proxy = true;
  provider.on('server_error', (ctx: KoaContextWithOIDC, error: Error) => {
    logger.error({ route: ctx.oidc?.route, error: error.name, message: error.message }, 'authorization server: internal error');
  });
  provider.on('grant.revoked', (ctx: KoaContextWithOIDC, grantId: string) => {
    logger.warn({ route: ctx.oidc?.route, grantId }, 'authorization server: grant revoked');
  });
  const refused = (ctx: KoaContextWithOIDC, error: Error): void => {
    logger.info({ route: ctx.oidc?.route, error: (error as { error?: string }).error, client: ctx.oidc?.client?.clientId }, 'authorization server: request refused');
  };
  provider.on('authorization.error', refused);
  provider.on('grant.error', refused);
  provider.on('registration_create.error', refused);
  provider.on('revocation.error', refused);
  provider.on('introspection.error', refused);
  const callback = provider.callback();

  const csrfFor = (uid: string): string => createHmac('sha256', csrfKey).update(`interaction:${uid}`).digest('base64url');
  const csrfValid = (uid: string, token: string | null): boolean => {
    if (token === null) return false;
    const expected = Buffer.from(csrfFor(uid));
    const given = Buffer.from(token);
    return given.length === expected.length && timingSafeEqual(given, expected);
  };

  interface InteractionContext {
    readonly uid: string;
    readonly details: Awaited<ReturnType<Provider['interactionDetails']>>;
    readonly clientName: string;
    readonly redirectUri: URL;
    readonly metadataDocument: boolean;
    readonly redirectUris: readonly string[];
  }

  const loadInteraction = async (req: IncomingMessage, res: ServerResponse, uid: string): Promise<InteractionContext | undefined> => {
    let details;
    try {
      details = await provider.interactionDetails(req, res);
    } catch {
      details = undefined;
    }
    const clientId = details?.params['client_id'];
    const redirect = details?.params['redirect_uri'];
    const client = typeof clientId === 'string' ? await provider.Client.find(clientId) : undefined;
    const redirectUri = typeof redirect === 'string' ? URL.parse(redirect) : null;
    if (details === undefined || details.uid !== uid || client === undefined || redirectUri === null) {
      sendError(res, 400, 'This sign-in page has expired', 'It is no longer valid, or it was opened in another browser. Go back to the application and start again.');
      return undefined;
    }
    return {
      uid,
      details,
      clientName: client.clientName ?? client.clientId,
      redirectUri,
      metadataDocument: (client as unknown as { clientIdMetadataDocument?: boolean }).clientIdMetadataDocument === true,
      redirectUris: client.redirectUris ?? [],
    };
  };

  /** When trouble with the sign-in limiter was last logged (ms since the epoch). */
  let limiterDownLogged = 0;
  /** Logs the sign-in limiter's trouble at most once a minute: anyone can post the form. */
  const limiterTrouble = (message: string, error: unknown): void => {
    if (Date.now() - limiterDownLogged <= 60_000) return;
    limiterDownLogged = Date.now();
    logger.error({ err: (error as Error).message }, message);
  };
  const showLogin = (res: ServerResponse, ctx: InteractionContext, status: number, error?: string, username?: string): void => {
    const nonce = newNonce();
    const html = renderLoginPage({
      nonce,
      action: `/oauth/interaction/${ctx.uid}/login`,
      csrf: csrfFor(ctx.uid),
      client: { name: ctx.clientName, redirectHost: ctx.redirectUri.host },
      ...(error === undefined ? {} : { error }),
      ...(username === undefined ? {} : { username }),
      ...(federation === undefined ? {} : { federation: { name: federation.name, href: `/oauth/interaction/${ctx.uid}/federation` } }),
    });
    sendPage(res, status, html, nonce, [ctx.redirectUri.origin]);
  };

  const showConsent = async (res: ServerResponse, ctx: InteractionContext): Promise<void> => {
    const accountId = ctx.details.session?.accountId;
    const user = accountId === undefined ? undefined : await users.get(accountId);
    const details = ctx.details.prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
    const requested = new Set<string>(details.missingOIDCScope ?? []);
    for (const scopes of Object.values(details.missingResourceScopes ?? {})) for (const s of scopes) requested.add(s);
    const scopes: ScopeView[] = [...requested].map((scope) => ({ scope, description: describeScope(scope, options.scopes) }));
    const warnings: string[] = [];
    if (ctx.metadataDocument && ctx.redirectUris.length > 0 && ctx.redirectUris.every((u) => LOOPBACK_HOSTS.has(URL.parse(u)?.hostname ?? ''))) {
      warnings.push(
        `This application describes itself at ${String(ctx.details.params['client_id'])} and returns only to this computer (localhost). Any program on this computer could claim that name: allow only if you started it yourself.`,
      );
    }
    const nonce = newNonce();
    const html = renderConsentPage({
      nonce,
      action: `/oauth/interaction/${ctx.uid}/consent`,
      csrf: csrfFor(ctx.uid),
      client: { name: ctx.clientName, redirectHost: ctx.redirectUri.host },
      username: user?.username ?? 'you',
      scopes,
      resources: Object.keys(details.missingResourceScopes ?? {}),
      warnings,
    });
    sendPage(res, 200, html, nonce, [ctx.redirectUri.origin]);
  };

  const login = async (req: IncomingMessage, res: ServerResponse, ctx: InteractionContext, form: URLSearchParams): Promise<void> => {
    if (ctx.details.prompt.name !== 'login') return sendError(res, 400, 'Already signed in', 'Go back to the application and start again.');
    const username = (form.get('username') ?? '').trim();
    const password = form.get('password') ?? '';
    // One path for every failure (unknown user, wrong password, disabled account): the directory
    // does the same work for each, and the answer is the same page, so it names no account.
    const address = req.socket.remoteAddress;
    const limiter = options.loginLimiter;
    if (limiter !== undefined && username !== '') {
      let wait: number | undefined;
      try {
        wait = await limiter.check(address, username);
      } catch (error) {
        // Fail closed: without its counters (Redis down) a sign-in is not tried, so not guessable.
        limiterTrouble('authorization server: the sign-in limiter is unavailable; sign-ins are refused', error);
        res.setHeader('retry-after', '5');
        return showLogin(res, ctx, 503, 'Signing in is unavailable for a moment. Try again shortly.', username);
      }
      if (wait !== undefined) {
        res.setHeader('retry-after', String(wait));
        return showLogin(res, ctx, 429, `Too many failed sign-ins. Try again in ${Math.ceil(wait / 60)} minute(s).`, username);
      }
    }
    const user = username === '' || password === '' ? undefined : await users.authenticate(username, password);
    if (user === undefined) {
      if (limiter !== undefined && username !== '') {
        await limiter.failed(address, username).catch((error: unknown) => limiterTrouble('authorization server: a failed sign-in could not be counted', error));
      }
      logger.info({ client: ctx.details.params['client_id'] }, 'authorization server: sign-in failed');
      return showLogin(res, ctx, 200, 'The username or password is not correct.', username);
    }
    await provider.interactionFinished(req, res, { login: { accountId: user.id, amr: ['pwd'] } }, { mergeWithLastSubmission: false });
  };

  const consent = async (req: IncomingMessage, res: ServerResponse, ctx: InteractionContext, form: URLSearchParams): Promise<void> => {
    const { details } = ctx;
    if (details.prompt.name !== 'consent') return sendError(res, 400, 'Nothing to allow', 'Go back to the application and start again.');
    const decision = form.get('decision');
    if (decision === 'deny') {
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the user denied access' }, { mergeWithLastSubmission: true });
      return;
    }
    if (decision !== 'allow') return sendError(res, 400, 'No decision', 'Choose Allow or Deny.');
    const accountId = details.session?.accountId;
    const clientId = details.params['client_id'];
    if (accountId === undefined || typeof clientId !== 'string') return sendError(res, 400, 'This sign-in page has expired', 'Go back to the application and start again.');
    const existing = details.grantId === undefined ? undefined : await provider.Grant.find(details.grantId);
    const grant = existing ?? new provider.Grant({ accountId, clientId });
    const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
    if (missing.missingOIDCScope !== undefined) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims !== undefined) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(resource, scopes.join(' '));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  };

  const interactionPath = /^\/oauth\/interaction\/([A-Za-z0-9_-]{1,64})(?:\/(login|consent|federation))?$/;

  const serveInteraction = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    if (federation !== undefined && path === federation.callbackPath) {
      const outcome = await federation.callback(req, res, provider);
      if (outcome !== undefined) sendError(res, 400, 'Single sign-on failed', outcome);
      return;
    }
    const match = interactionPath.exec(path);
    if (match === null) return sendError(res, 404, 'Not found', 'There is no page here.');
    const uid = match[1] as string;
    const action = match[2];
    const method = req.method ?? 'GET';
    if (action === undefined || action === 'federation') {
      if (method !== 'GET' && method !== 'HEAD') return sendError(res, 405, 'Method not allowed', 'Open this page with a link.');
      const ctx = await loadInteraction(req, res, uid);
      if (ctx === undefined) return;
      if (action === 'federation') {
        if (federation === undefined || ctx.details.prompt.name !== 'login') return sendError(res, 404, 'Not found', 'Single sign-on is not configured.');
        return federation.start(req, res, uid);
      }
      if (ctx.details.prompt.name === 'login') return showLogin(res, ctx, 200);
      if (ctx.details.prompt.name === 'consent') return showConsent(res, ctx);
      return sendError(res, 400, 'Unexpected step', 'Go back to the application and start again.');
    }
    if (method !== 'POST') return sendError(res, 405, 'Method not allowed', 'Submit the form instead.');
    const form = await readForm(req);
    if (form === undefined) return sendError(res, 400, 'Not a form', 'Submit the form on the page.');
    // CSRF: the token is an HMAC of the interaction id; only a page this server rendered for this
    // interaction has it (SameSite cookies are the second line).
    if (!csrfValid(uid, form.get('csrf'))) return sendError(res, 403, 'Form expired', 'The form could not be verified. Go back to the application and start again.');
    const ctx = await loadInteraction(req, res, uid);
    if (ctx === undefined) return;
    return action === 'login' ? login(req, res, ctx, form) : consent(req, res, ctx, form);
  };

  const prune = async (): Promise<void> => {
    try {
      await store.oauth.prune(Date.now());
    } catch (error) {
      logger.warn({ error: (error as Error).message }, 'authorization server: could not delete expired records');
    }
  };
  void prune();
  const pruneTimer = setInterval(() => void prune(), PRUNE_INTERVAL_MS);
  pruneTimer.unref();

  const owns = (path: string): boolean =>
    path === '/.well-known/oauth-authorization-server' || path === '/.well-known/openid-configuration' || path.startsWith('/oauth/');

  /** Open registrations per client address (open registration is unauthenticated). */
  const registrations = (options.limiters ?? memoryBackend).counter(REGISTRATION_LIMIT, 'register-addr');
  /** Seconds to wait when the address has used up its registrations; each other call counts one. Rejects when the store fails. */
  const registrationWait = async (address: string): Promise<number | undefined> => {
    const wait = waitSeconds(await registrations.get(address));
    if (wait === undefined) await count(registrations, address, REGISTRATION_LIMIT);
    return wait;
  };
  const routeToProvider = (req: IncomingMessage, res: ServerResponse, path: string): void => {
    if (path === '/oauth/authorize') pageInsteadOfErrorRedirect(res, issuerUrl.origin);
    req.headers['x-forwarded-proto'] = issuerUrl.protocol.slice(0, -1);
    req.headers['x-forwarded-host'] = issuerUrl.host;
    if (path.startsWith('/oauth/interaction/') || (federation !== undefined && path === federation.callbackPath)) {
      serveInteraction(req, res, path).catch((error: unknown) => {
        logger.error({ error: (error as Error).name, message: (error as Error).message }, 'authorization server: interaction failed');
        sendError(res, 500, 'Something went wrong', 'The sign-in could not be completed. Go back to the application and try again.');
      });
    } else {
      void callback(req, res);
    }
  };

  let publicJwks: { keys: JsonWebKey[] } | undefined;
  return {
    issuer: options.issuer,
    handle(req, res) {
      const url = req.url ?? '/';
      const query = url.indexOf('?');
      const path = query < 0 ? url : url.slice(0, query);
      if (!owns(path)) return false;
      if (path === '/oauth/register' && req.method === 'POST' && options.config.registration.mode === 'open') {
        registrationWait(req.socket.remoteAddress ?? '').then(
          (wait) => {
            if (wait === undefined) return routeToProvider(req, res, path);
            res.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(wait), 'cache-control': 'no-store' });
            res.end(JSON.stringify({ error: 'temporarily_unavailable', error_description: `too many client registrations from this address; try again in ${wait} s` }));
          },
          // The counter's store (Redis) cannot be reached: closed, as for the sign-in counters.
          () => {
            res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5', 'cache-control': 'no-store' });
            res.end(JSON.stringify({ error: 'temporarily_unavailable', error_description: 'registration is unavailable; try again shortly' }));
          },
        );
        return true;
      }
      routeToProvider(req, res, path);
      return true;
    },
    jwks() {
      // One object for the life of the server (keys are loaded at start): the resource server keys
      // its imported key set on this identity, so a new object per call would re-import every time.
      publicJwks ??= { keys: signingKeys.map((k) => publicJwk(k) as JsonWebKey) };
      return publicJwks;
    },
    async close() {
      clearInterval(pruneTimer);
    },
  };
}
