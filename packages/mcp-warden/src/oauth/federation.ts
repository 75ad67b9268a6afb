/**
 * "Log in with" an upstream OpenID provider: from the sign-in page, the authorization code flow with
 * PKCE S256 and a nonce to the upstream (OpenID Connect Core §3.1, RFC 7636), its ID token checked
 * by oauth4webapi (issuer, audience, expiry, nonce; RFC 9207 `iss` when the upstream advertises it),
 * its claims mapped to roles, and the account created or updated through the user directory. The ID
 * token's signature is not checked: it comes straight from the token endpoint over TLS, which OIDC
 * Core §3.1.3.7 (6) allows; an `http:` upstream is therefore for local tests only. The flow's state
 * lives in the store for ten minutes and is used once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { rolesFromClaims } from '@mcp-warden/core';
import * as oauth from 'oauth4webapi';
import type Provider from 'oidc-provider';
import type { AuthorizationServerConfig } from '../config/schema.js';
import type { AuthorizationServerLogger, UserDirectory } from './authorization-server.js';

type FederationConfig = NonNullable<AuthorizationServerConfig['federation']>;

/** The federation flow, as the authorization server drives it. */
export interface Federation {
  /** The button's text after "Log in with". */
  readonly name: string;
  /** The redirect URI registered at the upstream: `<issuer>/oauth/federation/callback`. */
  readonly callbackPath: string;
  /** Redirects the browser to the upstream for the interaction `uid`. */
  start(req: IncomingMessage, res: ServerResponse, uid: string): Promise<void>;
  /** Finishes the flow; returns a message for people when it cannot (the response is then unsent). */
  callback(req: IncomingMessage, res: ServerResponse, provider: Provider): Promise<string | undefined>;
}

const STATE_TTL_MS = 10 * 60_000;
const CALLBACK_PATH = '/oauth/federation/callback';

/**
 * Roles from claims: each rule's claim (a string, a space-separated string or a list of strings)
 * gives the roles its values map to; values no rule lists grant nothing. The same reading as the
 * resource server's for identity-provider tokens (`rolesFromClaims` in @mcp-warden/core).
 */
export function mapClaimsToRoles(
  claims: Readonly<Record<string, unknown>>,
  rules: readonly { readonly claim: string; readonly values: Readonly<Record<string, readonly string[]>> }[],
  defaultRoles: readonly string[] = [],
): string[] {
  return rolesFromClaims(claims, { roles: rules, defaultRoles });
}

interface FederationState {
  readonly uid: string;
  readonly verifier: string;
  readonly nonce: string;
}

/** Creates the federation flow. Discovery of the upstream happens on first use and is kept. */
export function createFederation(options: {
  readonly config: FederationConfig;
  /** This authorization server's issuer (the gateway's public origin). */
  readonly issuer: string;
  readonly users: UserDirectory;
  readonly logger: AuthorizationServerLogger;
  readonly store: { upsert: (model: string, id: string, payload: Record<string, unknown>, expiresAt?: number) => Promise<void>; find: (model: string, id: string) => Promise<{ payload: Readonly<Record<string, unknown>> } | undefined>; destroy: (model: string, id: string) => Promise<void> };
  readonly fetch?: typeof fetch;
}): Federation {
  const { config, users, logger, store } = options;
  const upstream = new URL(config.issuer);
  const redirectUri = `${options.issuer}${CALLBACK_PATH}`;
  const client: oauth.Client = { client_id: config.clientId };
  const clientAuth = oauth.ClientSecretBasic(config.clientSecret);
  // http upstreams only for local tests and development; the issuer is the operator's choice.
  const httpOptions = { ...(options.fetch === undefined ? {} : { [oauth.customFetch]: options.fetch }), ...(upstream.protocol === 'http:' ? { [oauth.allowInsecureRequests]: true } : {}) };
  let metadata: Promise<oauth.AuthorizationServer> | undefined;
  const discover = (): Promise<oauth.AuthorizationServer> => {
    metadata ??= oauth
      .discoveryRequest(upstream, { algorithm: 'oidc', ...httpOptions })
      .then((response) => oauth.processDiscoveryResponse(upstream, response))
      .catch((error: unknown) => {
        metadata = undefined;
        throw error;
      });
    return metadata;
  };

  return {
    name: config.name,
    callbackPath: CALLBACK_PATH,

    async start(_req, res, uid) {
      const as = await discover();
      if (as.authorization_endpoint === undefined) throw new Error('the federation issuer has no authorization_endpoint');
      const verifier = oauth.generateRandomCodeVerifier();
      const state = oauth.generateRandomState();
      const nonce = oauth.generateRandomNonce();
      await store.upsert('FederationState', state, { uid, verifier, nonce } satisfies FederationState, Date.now() + STATE_TTL_MS);
      const url = new URL(as.authorization_endpoint);
      url.searchParams.set('client_id', config.clientId);
      url.searchParams.set('redirect_uri', redirectUri);
      url.searchParams.set('response_type', 'code');
      url.searchParams.set('scope', [...new Set(['openid', ...config.scopes])].join(' '));
      url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
      url.searchParams.set('code_challenge_method', 'S256');
      url.searchParams.set('state', state);
      url.searchParams.set('nonce', nonce);
      res.writeHead(303, { location: url.href, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
      res.end();
    },

    async callback(req, res, provider) {
      const params = new URL(req.url ?? '/', options.issuer).searchParams;
      const stateId = params.get('state');
      const stored = stateId === null ? undefined : await store.find('FederationState', stateId);
      if (stateId === null || stored === undefined) return 'The sign-in took too long or was already used. Go back to the application and start again.';
      await store.destroy('FederationState', stateId);
      const state = stored.payload as unknown as FederationState;
      let details;
      try {
        details = await provider.interactionDetails(req, res);
      } catch {
        details = undefined;
      }
      if (details === undefined || details.uid !== state.uid || details.prompt.name !== 'login') {
        return 'This sign-in was started in another browser or has expired. Go back to the application and start again.';
      }
      let claims: oauth.IDToken;
      try {
        const as = await discover();
        const callbackParams = oauth.validateAuthResponse(as, client, params, stateId);
        const response = await oauth.authorizationCodeGrantRequest(as, client, clientAuth, callbackParams, redirectUri, state.verifier, httpOptions);
        const result = await oauth.processAuthorizationCodeResponse(as, client, response, { expectedNonce: state.nonce, requireIdToken: true });
        claims = oauth.getValidatedIdTokenClaims(result) as oauth.IDToken;
      } catch (error) {
        const code = error instanceof oauth.ResponseBodyError || error instanceof oauth.AuthorizationResponseError ? error.error : (error as Error).name;
        logger.warn({ issuer: config.issuer, error: code }, 'authorization server: federated sign-in failed');
        return `${config.name} did not complete the sign-in (${code}). Go back to the application and try again.`;
      }
      if (users.upsertFederated === undefined) return 'Single sign-on is not available on this server.';
      const roles = mapClaimsToRoles(claims, config.roles, config.defaultRoles);
      const preferred = [claims['preferred_username'], claims['email'], claims.sub].find((v): v is string => typeof v === 'string' && v !== '') as string;
      let user: { id: string };
      try {
        user = await users.upsertFederated(config.issuer, claims.sub, preferred, roles);
      } catch (error) {
        // A disabled account signs in no more, whichever way it comes.
        if ((error as { code?: unknown }).code === 'disabled') return 'This account is disabled. Ask an administrator.';
        throw error;
      }
      await provider.interactionFinished(req, res, { login: { accountId: user.id, amr: ['fed'] } }, { mergeWithLastSubmission: false });
      return undefined;
    },
  };
}
