/**
 * The client side of the OAuth end-to-end tests: an in-memory `OAuthClientProvider` usable by both
 * official SDKs (v1 `@modelcontextprotocol/sdk` and v2 `@modelcontextprotocol/client`), a loopback
 * callback server for its redirect URI, and a `fetch` that records what the SDK put on the wire so
 * tests can assert the client-side rules of the MCP authorization spec (PKCE S256, `resource` on
 * both the authorization and the token request, `state`, discovery order).
 */
import { randomBytes } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One HTTP exchange the SDK made (MCP requests and OAuth requests alike). */
export interface WireExchange {
  readonly method: string;
  readonly url: URL;
  /** The Authorization header's scheme and a short prefix of its value, never the whole token. */
  readonly authorization: string | null;
  /** Form parameters of an `application/x-www-form-urlencoded` body (token, revocation requests). */
  readonly form: URLSearchParams | null;
  /** The JSON body, when there was one (MCP messages, registration requests). */
  readonly json: unknown;
  readonly status: number;
  readonly wwwAuthenticate: string | null;
}

type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** A `fetch` (for the transports' `fetch` option) that records every exchange in `log`. */
export function recordingFetch(log: WireExchange[]): Fetch {
  return async (input, init) => {
    const request = new Request(input, init);
    const contentType = request.headers.get('content-type') ?? '';
    let form: URLSearchParams | null = null;
    let json: unknown = null;
    if (request.body !== null) {
      const text = await request.clone().text();
      if (contentType.startsWith('application/x-www-form-urlencoded')) form = new URLSearchParams(text);
      else if (contentType.includes('json') && text !== '') json = JSON.parse(text) as unknown;
    }
    const response = await fetch(request);
    const auth = request.headers.get('authorization');
    log.push({
      method: request.method,
      url: new URL(request.url),
      authorization: auth === null ? null : auth.slice(0, 16),
      form,
      json,
      status: response.status,
      wwwAuthenticate: response.headers.get('www-authenticate'),
    });
    return response;
  };
}

/** A loopback HTTP server standing for a native client's redirect URI (RFC 8252 §7.3). */
export interface CallbackServer {
  /** `http://127.0.0.1:<port>/callback` */
  readonly url: string;
  /** Every callback the browser delivered. */
  readonly received: URL[];
  close(): Promise<void>;
}

export async function startCallbackServer(): Promise<CallbackServer> {
  const received: URL[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/callback') {
      res.writeHead(404).end();
      return;
    }
    received.push(new URL(`${base}${url.pathname}${url.search}`));
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html lang="en"><title>Signed in</title><h1>You may close this window</h1></html>');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${base}/callback`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Tokens and client information as the SDKs hand them over (both SDKs' shapes are plain JSON objects). */
type Json = Record<string, any>;

export interface BrowserOAuthProviderOptions {
  /** The loopback redirect URI (from {@link startCallbackServer}). */
  readonly redirectUrl: string;
  readonly clientName: string;
  /** An https URL whose document the authorization server fetches (a client ID metadata document). */
  readonly clientMetadataUrl?: string;
  /** Drives the user agent through the authorization URL and returns the callback URL it reached. */
  readonly authorize: (authorizationUrl: URL) => Promise<URL>;
}

/**
 * An `OAuthClientProvider` that keeps everything in memory, hands authorization URLs to a browser
 * driver, and remembers what happened so tests can assert it. Both SDKs accept it: their provider
 * interfaces share these members (v2 adds optional context arguments it may ignore).
 */
export class BrowserOAuthProvider {
  /** Every authorization URL the SDK asked the user agent to open. */
  readonly authorizationUrls: URL[] = [];
  /** Every token response saved, in order. */
  readonly savedTokens: Json[] = [];
  /** Every `invalidateCredentials` call's scope, in order. */
  readonly invalidated: string[] = [];
  readonly clientMetadataUrl: string | undefined;
  private client: Json | undefined;
  private current: Json | undefined;
  private verifier: string | undefined;
  private discovery: Json | undefined;
  private states: string[] = [];
  private pending: Promise<URL> | undefined;

  constructor(private readonly options: BrowserOAuthProviderOptions) {
    this.clientMetadataUrl = options.clientMetadataUrl;
  }

  get redirectUrl(): string {
    return this.options.redirectUrl;
  }

  get clientMetadata(): Json & { redirect_uris: string[] } {
    return {
      client_name: this.options.clientName,
      redirect_uris: [this.options.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    };
  }

  /** A fresh, unguessable `state` per authorization request; {@link takeCallback} checks it came back. */
  state(): string {
    const state = randomBytes(16).toString('base64url');
    this.states.push(state);
    return state;
  }

  clientInformation(): any {
    return this.client;
  }

  saveClientInformation(information: Json): void {
    this.client = information;
  }

  /** The registered client (from DCR, or the metadata document URL). */
  get registeredClient(): Json | undefined {
    return this.client;
  }

  tokens(): any {
    return this.current;
  }

  saveTokens(tokens: Json): void {
    this.current = tokens;
    this.savedTokens.push(tokens);
  }

  redirectToAuthorization(authorizationUrl: URL): void {
    this.authorizationUrls.push(authorizationUrl);
    const pending = this.options.authorize(authorizationUrl);
    // Observed later by takeCallback; never an unhandled rejection in between.
    pending.catch(() => {});
    this.pending = pending;
  }

  saveCodeVerifier(codeVerifier: string): void {
    this.verifier = codeVerifier;
  }

  codeVerifier(): string {
    if (this.verifier === undefined) throw new Error('no PKCE code verifier saved');
    return this.verifier;
  }

  saveDiscoveryState(state: Json): void {
    this.discovery = state;
  }

  discoveryState(): any {
    return this.discovery;
  }

  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    this.invalidated.push(scope);
    if (scope === 'all' || scope === 'client') this.client = undefined;
    if (scope === 'all' || scope === 'tokens') this.current = undefined;
    if (scope === 'all' || scope === 'verifier') this.verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this.discovery = undefined;
  }

  /**
   * Waits for the browser to reach the redirect URI and returns the callback's parameters, after
   * checking that `state` is the one this provider issued for the latest request (CSRF, RFC 6749 §10.12).
   */
  async takeCallback(): Promise<URLSearchParams> {
    if (this.pending === undefined) throw new Error('the SDK never asked for an authorization (no redirectToAuthorization call)');
    const callback = await this.pending;
    this.pending = undefined;
    const params = callback.searchParams;
    const expected = this.states.at(-1);
    if (expected !== undefined && params.get('state') !== expected) {
      throw new Error(`state mismatch: sent ${expected}, got ${params.get('state') ?? '(none)'}`);
    }
    return params;
  }

  /** The code from the latest callback; throws with the authorization server's error otherwise. */
  async takeCode(): Promise<string> {
    const params = await this.takeCallback();
    const code = params.get('code');
    if (code === null) throw new Error(`authorization failed: ${params.get('error') ?? 'no code'} ${params.get('error_description') ?? ''}`);
    return code;
  }

  /**
   * Makes the next request carry an access token the resource server will refuse (401
   * `invalid_token`), the way an expired one would be, keeping the refresh token: the SDK must
   * then refresh on its own. Returns the token that was replaced.
   */
  expireAccessToken(): string {
    if (this.current === undefined) throw new Error('no tokens to expire');
    const old = String(this.current['access_token']);
    this.current = { ...this.current, access_token: `expired.${randomBytes(12).toString('base64url')}` };
    return old;
  }
}

/** The claims of a JWT (unverified: for assertions on what a client received). */
export function jwtClaims(token: string): Json {
  const payload = token.split('.')[1];
  if (payload === undefined) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Json;
}
