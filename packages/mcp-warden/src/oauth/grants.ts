/**
 * Remembered consent: oidc-provider's grants (one per user and client), listed and revoked from the
 * store, without a running authorization server (the CLI uses this). Revoking a grant deletes it and
 * every code and refresh token issued under it, so the next authorization asks for consent again
 * and the client's refresh tokens stop working at once. JWT access tokens already issued stay valid
 * until they expire (`accessTokenTtl`): they are checked without the store.
 */
import type { OAuthStore } from '../store/types.js';
import { GRANT_BOUND_MODELS } from './adapter.js';

/** A grant as people see it. Times in ms since the epoch. */
export interface GrantView {
  readonly id: string;
  readonly accountId: string;
  readonly clientId: string;
  /** OpenID scopes (`openid`, `offline_access`) and resource scopes together. */
  readonly scopes: readonly string[];
  /** The resource URIs (MCP servers) it covers. */
  readonly resources: readonly string[];
  readonly createdAt?: number;
  readonly expiresAt?: number;
}

function viewOf(id: string, payload: Readonly<Record<string, unknown>>, expiresAt: number | undefined): GrantView {
  const openid = (payload['openid'] as { scope?: string } | undefined)?.scope ?? '';
  const resources = (payload['resources'] as Record<string, string> | undefined) ?? {};
  const scopes = new Set(openid.split(' ').filter((s) => s !== ''));
  for (const scope of Object.values(resources)) for (const s of scope.split(' ')) if (s !== '') scopes.add(s);
  const iat = payload['iat'];
  return {
    id,
    accountId: String(payload['accountId'] ?? ''),
    clientId: String(payload['clientId'] ?? ''),
    scopes: [...scopes],
    resources: Object.keys(resources),
    ...(typeof iat === 'number' ? { createdAt: iat * 1000 } : {}),
    ...(expiresAt === undefined ? {} : { expiresAt }),
  };
}

/** Lists and revokes grants. */
export class GrantService {
  readonly #store: OAuthStore;

  constructor(store: OAuthStore) {
    this.#store = store;
  }

  /** Unexpired grants, optionally of one user (account id) and/or client. */
  async list(filter: { readonly accountId?: string; readonly clientId?: string } = {}): Promise<GrantView[]> {
    const entries = await this.#store.list('Grant', filter);
    return entries.map((e) => viewOf(e.id, e.payload, e.expiresAt));
  }

  /** Revokes every grant of the user to the client, with its codes and tokens; returns how many grants. */
  async revoke(accountId: string, clientId: string): Promise<number> {
    const grants = await this.#store.list('Grant', { accountId, clientId });
    for (const grant of grants) {
      for (const model of GRANT_BOUND_MODELS) await this.#store.revokeByGrantId(model, grant.id);
      await this.#store.destroy('Grant', grant.id);
    }
    return grants.length;
  }
}
