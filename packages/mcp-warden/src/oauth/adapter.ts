/**
 * oidc-provider's storage adapter over mcp-warden's {@link OAuthStore}: one adapter per model name
 * (`Grant`, `Session`, `AccessToken`, …), as oidc-provider's adapter contract asks. Expiry is given
 * by oidc-provider in seconds from now and stored as an absolute time in ms, so every instance on
 * one database agrees on it.
 */
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { OAuthRecord, OAuthStore } from '../store/types.js';

/** Token-like models that belong to a grant; what a grant's revocation deletes (oidc-provider's own list). */
export const GRANT_BOUND_MODELS = ['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'PreAuthorizedCode'] as const;

function toPayload(record: OAuthRecord | undefined): AdapterPayload | undefined {
  if (record === undefined) return undefined;
  const payload = { ...record.payload } as AdapterPayload;
  // oidc-provider reads `consumed` (any truthy value) to detect a code or refresh token used twice.
  if (record.consumedAt !== undefined) payload.consumed = Math.floor(record.consumedAt / 1000);
  return payload;
}

/** The adapter factory to give oidc-provider as `adapter`. */
export function storeAdapter(store: OAuthStore): new (model: string) => Adapter {
  return class StoreAdapter implements Adapter {
    readonly #model: string;

    constructor(model: string) {
      this.#model = model;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      const expiresAt = expiresIn === undefined || expiresIn <= 0 ? undefined : Date.now() + expiresIn * 1000;
      await store.upsert(this.#model, id, payload as Record<string, unknown>, expiresAt);
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      return toPayload(await store.find(this.#model, id));
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return toPayload(await store.findByUid(this.#model, uid));
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return toPayload(await store.findByUserCode(this.#model, userCode));
    }

    async consume(id: string): Promise<void> {
      await store.consume(this.#model, id, Date.now());
    }

    async destroy(id: string): Promise<void> {
      await store.destroy(this.#model, id);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await store.revokeByGrantId(this.#model, grantId);
    }
  };
}
