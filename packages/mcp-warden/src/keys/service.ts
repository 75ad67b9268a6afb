/** Key management: create, list, show, revoke, rotate. The plaintext exists only in `create`'s and `rotate`'s result. */
import type { ApiKeyRecord, KeyStore } from '../store/types.js';
import { mintKey, newKeyId } from './format.js';

/** What a caller gets once, at creation or rotation. */
export interface IssuedKey {
  readonly record: ApiKeyRecord;
  /** The full key. Shown exactly once; never stored, never logged. */
  readonly plaintext: string;
}

/** Options of {@link KeyService.create}. */
export interface CreateKeyOptions {
  readonly name: string;
  readonly roles: readonly string[];
  /** Lifetime in ms; none means no expiry. */
  readonly expiresInMs?: number;
  readonly note?: string;
}

/** The state of a key at a time. */
export type KeyStatus = 'active' | 'expired' | 'revoked' | 'rotating';

/** The status of a key at `now`. */
export function keyStatus(record: ApiKeyRecord, now: number): KeyStatus {
  if (record.revokedAt !== undefined) return 'revoked';
  if (record.expiresAt !== undefined && record.expiresAt <= now) return 'expired';
  if (record.replacedBy !== undefined) return 'rotating';
  return 'active';
}

/** Key operations over a store. `onChange` lets a verifier in the same process drop its cache at once. */
export class KeyService {
  readonly #store: KeyStore;
  readonly #now: () => number;
  readonly #onChange: (id: string) => void;

  constructor(store: KeyStore, options: { now?: () => number; onChange?: (id: string) => void } = {}) {
    this.#store = store;
    this.#now = options.now ?? Date.now;
    this.#onChange = options.onChange ?? (() => {});
  }

  async create(options: CreateKeyOptions): Promise<IssuedKey> {
    if (options.name.trim() === '') throw new TypeError('a key needs a name');
    if (options.roles.length === 0) throw new TypeError('a key needs at least one role');
    if (options.expiresInMs !== undefined && !(options.expiresInMs > 0)) throw new TypeError('the expiry must be in the future');
    const id = newKeyId();
    const { plaintext, hash } = mintKey(id);
    const now = this.#now();
    const record: ApiKeyRecord = {
      id,
      name: options.name,
      hash,
      roles: [...options.roles],
      createdAt: now,
      ...(options.expiresInMs === undefined ? {} : { expiresAt: now + options.expiresInMs }),
      ...(options.note === undefined ? {} : { note: options.note }),
    };
    await this.#store.insertKey(record);
    return { record, plaintext };
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.#store.listKeys();
  }

  show(id: string): Promise<ApiKeyRecord | undefined> {
    return this.#store.getKey(id);
  }

  /** Revokes a key at once; false when there is no such key. */
  async revoke(id: string): Promise<boolean> {
    const found = await this.#store.revokeKey(id, this.#now());
    if (found) this.#onChange(id);
    return found;
  }

  /**
   * Issues a successor with the same name, roles and note; the old key keeps working for `graceMs`
   * (0 revokes it now). Refuses to rotate a revoked or expired key, or one already being rotated.
   */
  async rotate(id: string, graceMs: number): Promise<IssuedKey> {
    const old = await this.#store.getKey(id);
    if (old === undefined) throw new KeyNotFoundError(id);
    const status = keyStatus(old, this.#now());
    if (status === 'revoked' || status === 'expired') throw new TypeError(`key ${id} is ${status}; create a new key instead`);
    // Its expiry is now the end of the first rotation's grace, not its lifetime: a second rotation
    // would give the successor a lifetime the key never had, and unlink the first successor.
    if (status === 'rotating') throw new TypeError(`key ${id} is already being rotated (replaced by ${old.replacedBy}); rotate ${old.replacedBy} instead`);
    const now = this.#now();
    const newId = newKeyId();
    const { plaintext, hash } = mintKey(newId);
    const record: ApiKeyRecord = {
      id: newId,
      name: old.name,
      hash,
      roles: [...old.roles],
      createdAt: now,
      rotatedFrom: old.id,
      ...(old.expiresAt === undefined ? {} : { expiresAt: now + Math.max(0, old.expiresAt - old.createdAt) }),
      ...(old.note === undefined ? {} : { note: old.note }),
    };
    await this.#store.insertKey(record);
    if (graceMs <= 0) await this.#store.revokeKey(old.id, now);
    await this.#store.markRotated(old.id, record.id, now + Math.max(0, graceMs));
    this.#onChange(old.id);
    return { record, plaintext };
  }
}

/** No key has this id. */
export class KeyNotFoundError extends Error {
  override readonly name = 'KeyNotFoundError';
  constructor(readonly id: string) {
    super(`no key with id ${id}`);
  }
}
