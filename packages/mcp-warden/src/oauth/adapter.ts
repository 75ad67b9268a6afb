/**
 * oidc-provider's storage adapter over mcp-warden's {@link OAuthStore}: one adapter per model name
 * (`Grant`, `Session`, `AccessToken`, …), as oidc-provider's adapter contract asks. Expiry is given
 * by oidc-provider in seconds from now and stored as an absolute time in ms, so every instance on
 * one database agrees on it.
 */
import { createHash } from 'node:crypto';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { OAuthRecord, OAuthStore } from '../store/types.js';

/** Token-like models that belong to a grant; what a grant's revocation deletes (oidc-provider's own list). */
export const GRANT_BOUND_MODELS = ['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'PreAuthorizedCode'] as const;

/**
 * Models whose id IS the credential (a refresh token, an authorization code, an opaque access
 * token, a registration access token): stored under a SHA-256 of the id, with the `jti` copy
 * removed from the payload, so a copy of the database holds no usable token (OAuth 2.1 §7.1;
 * MCP authorization "Token Theft"). oidc-provider always looks these up by the presented value.
 */
export const HASHED_MODELS: ReadonlySet<string> = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'ClientCredentials',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'RegistrationAccessToken',
  'InitialAccessToken',
]);

/** The stored key of a token-like id. */
export function storedTokenId(id: string): string {
  return `sha256:${createHash('sha256').update(id).digest('base64url')}`;
}

function toPayload(record: OAuthRecord | undefined, jti?: string): AdapterPayload | undefined {
  if (record === undefined) return undefined;
  const payload = { ...record.payload } as AdapterPayload;
  if (jti !== undefined) payload.jti = jti;
  // oidc-provider reads `consumed` (any truthy value) to detect a code or refresh token used twice.
  if (record.consumedAt !== undefined) payload.consumed = Math.floor(record.consumedAt / 1000);
  return payload;
}

/** The adapter factory to give oidc-provider as `adapter`. */
export function storeAdapter(store: OAuthStore): new (model: string) => Adapter {
  return class StoreAdapter implements Adapter {
    readonly #model: string;
    readonly #hashed: boolean;

    constructor(model: string) {
      this.#model = model;
      this.#hashed = HASHED_MODELS.has(model);
    }

    #key(id: string): string {
      return this.#hashed ? storedTokenId(id) : id;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      const expiresAt = expiresIn === undefined || expiresIn <= 0 ? undefined : Date.now() + expiresIn * 1000;
      let stored = payload as Record<string, unknown>;
      if (this.#hashed) {
        const { jti: _jti, ...rest } = stored;
        stored = rest;
      }
      await store.upsert(this.#model, this.#key(id), stored, expiresAt);
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      const record = await store.find(this.#model, this.#key(id));
      return toPayload(record, this.#hashed && record?.payload['jti'] === undefined ? id : undefined);
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return toPayload(await store.findByUid(this.#model, uid));
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return toPayload(await store.findByUserCode(this.#model, userCode));
    }

    async consume(id: string): Promise<void> {
      await store.consume(this.#model, this.#key(id), Date.now());
    }

    async destroy(id: string): Promise<void> {
      await store.destroy(this.#model, this.#key(id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await store.revokeByGrantId(this.#model, grantId);
    }
  };
}
