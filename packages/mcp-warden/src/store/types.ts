/**
 * Storage interfaces, one small async interface per aggregate. Backends (memory, SQLite, PostgreSQL)
 * implement them; nothing outside `store/` and the wiring names a backend. One contract test suite
 * (test/store/contract.test.ts) runs against every backend.
 */
import type { AuditEvent } from '@mcp-warden/core';

/** A managed API key as stored: never the secret, only its hash. Times in ms since the epoch. */
export interface ApiKeyRecord {
  /** Public key id (the part after `mcpw_`). */
  readonly id: string;
  readonly name: string;
  /** Hex SHA-256 of `<id>:<secret>`. */
  readonly hash: string;
  readonly roles: readonly string[];
  readonly note?: string;
  readonly createdAt: number;
  readonly expiresAt?: number;
  readonly revokedAt?: number;
  readonly lastUsedAt?: number;
  /** The key this one replaced by rotation. */
  readonly rotatedFrom?: string;
  /** The key that replaced this one by rotation. */
  readonly replacedBy?: string;
}

/** Keys: create, read, revoke, rotate, and record use. */
export interface KeyStore {
  insertKey(record: ApiKeyRecord): Promise<void>;
  getKey(id: string): Promise<ApiKeyRecord | undefined>;
  listKeys(): Promise<ApiKeyRecord[]>;
  /** Marks a key revoked at `at`; false when no such key. An already revoked key keeps its time. */
  revokeKey(id: string, at: number): Promise<boolean>;
  /** Ends the old key of a rotation at `expiresAt` (never later than an expiry it already had) and links the pair. */
  markRotated(oldId: string, newId: string, expiresAt: number): Promise<void>;
  /** Writes last-used times (coalesced by the caller); a later time never goes backwards. */
  touchKeys(uses: ReadonlyMap<string, number>): Promise<void>;
  /**
   * A cheap, synchronous token that changes when another process may have changed keys (SQLite's
   * `data_version`, a PostgreSQL NOTIFY counter). Caches compare it to drop entries at once.
   */
  changeToken(): number;
}

/** An audit event as stored: with its place in the hash chain. */
export interface StoredAuditEvent extends AuditEvent {
  readonly seq: number;
  readonly prevHash: string;
  readonly hash: string;
}

/** The chain's head, and where retention cut it. */
export interface AuditHead {
  readonly seq: number;
  readonly hash: string;
  /** Events up to this seq were removed by retention; verification starts after it. */
  readonly prunedSeq: number;
  /** The hash of the last pruned event (the genesis hash when nothing was pruned). */
  readonly prunedHash: string;
}

/** Filters for reading the audit log. */
export interface AuditQuery {
  readonly afterSeq?: number;
  /** Only events at or after this time (ms since the epoch). */
  readonly since?: number;
  readonly principalId?: string;
  readonly decision?: 'allow' | 'deny';
  /** Newest first when true (for `tail`), oldest first otherwise. */
  readonly newestFirst?: boolean;
  readonly limit?: number;
}

/** The audit log: append sealed batches, read, prune. */
export interface AuditStore {
  /** Seals events into the chain after the current head, atomically, and stores them. */
  append(events: readonly AuditEvent[]): Promise<readonly StoredAuditEvent[]>;
  query(query: AuditQuery): Promise<StoredAuditEvent[]>;
  head(): Promise<AuditHead>;
  /** Removes events older than `before` (ms), moving the verification anchor past them. Returns how many. */
  prune(before: number): Promise<number>;
  /**
   * The first event whose stored time in ms (what `since` queries and `prune` read; not covered by
   * the hash) is not its `time`, the hashed one; `undefined` when all agree. Stores that keep no
   * such column leave it out.
   */
  firstTimeMismatch?(): Promise<number | undefined>;
}

/** Values the gateway instances of one store share, created once (the session signing key). */
export interface SecretStore {
  /** The value stored under `name`; when there is none, stores `create()`'s (first writer wins). */
  getOrCreate(name: string, create: () => string): Promise<string>;
}

/**
 * A person's account as stored: a local account (with a password hash), a federated one (an identity
 * at an upstream OIDC provider, no password), or both. Times in ms since the epoch.
 */
export interface StoredUser {
  /** `usr_` and 16 random base64url characters. */
  readonly id: string;
  /** The name as given, NFC-normalised; shown to people. */
  readonly username: string;
  /** The folded name (users/username.ts): unique, what lookups compare. */
  readonly usernameFolded: string;
  /** An argon2id PHC string; absent for federated-only accounts. */
  readonly passwordHash?: string;
  readonly roles: readonly string[];
  readonly disabledAt?: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** The identity at an upstream provider (issuer and `sub`), unique when set. */
  readonly federated?: { readonly issuer: string; readonly subject: string };
}

/** A change to a user; absent fields stay as they are, `null` clears. */
export interface StoredUserUpdate {
  readonly roles?: readonly string[];
  readonly passwordHash?: string | null;
  readonly disabledAt?: number | null;
  readonly updatedAt: number;
}

/** Users: insert, read (by id, folded name, federated identity), list, update. */
export interface UserStore {
  /**
   * Inserts a user; false (and nothing written) when its id, folded name or federated identity is
   * already taken, so two concurrent inserts of one name cannot both succeed.
   */
  insertUser(record: StoredUser): Promise<boolean>;
  getUser(id: string): Promise<StoredUser | undefined>;
  getUserByFoldedName(usernameFolded: string): Promise<StoredUser | undefined>;
  getUserByFederated(issuer: string, subject: string): Promise<StoredUser | undefined>;
  /** Every user, oldest first, ties broken by id. */
  listUsers(): Promise<StoredUser[]>;
  /**
   * Applies `update`; false when no such user, or when `ifPasswordHash` is given and the stored hash
   * differs (a rehash must not overwrite a password changed in the meantime).
   */
  updateUser(id: string, update: StoredUserUpdate, options?: { readonly ifPasswordHash?: string }): Promise<boolean>;
}

/**
 * One artefact of the built-in authorization server (oidc-provider's models: `Grant`, `Session`,
 * `AccessToken`, `RefreshToken`, `AuthorizationCode`, `Interaction`, `Client`, …) as stored. The
 * payload is oidc-provider's own JSON; the store indexes the fields it is looked up by.
 */
export interface OAuthRecord {
  readonly payload: Readonly<Record<string, unknown>>;
  /** When it stops being returned, ms since the epoch; absent: never. */
  readonly expiresAt?: number;
  /** When it was consumed (a used authorization code, a rotated refresh token), ms since the epoch. */
  readonly consumedAt?: number;
}

/** An {@link OAuthRecord} with its id, as listed. */
export interface OAuthEntry extends OAuthRecord {
  readonly id: string;
}

/**
 * The authorization server's state: what oidc-provider's adapter contract needs, per model name.
 * The store reads `grantId`, `uid`, `userCode`, `accountId` and `clientId` from the payload to index
 * them. Expired records are never returned; {@link OAuthStore.prune} deletes them.
 */
export interface OAuthStore {
  /** Creates or replaces a record (a replaced record is no longer consumed). */
  upsert(model: string, id: string, payload: Readonly<Record<string, unknown>>, expiresAt?: number): Promise<void>;
  /** Creates a record unless one exists (expired or not); true when this call created it (first writer wins). */
  insert(model: string, id: string, payload: Readonly<Record<string, unknown>>, expiresAt?: number): Promise<boolean>;
  find(model: string, id: string): Promise<OAuthRecord | undefined>;
  findByUid(model: string, uid: string): Promise<OAuthRecord | undefined>;
  findByUserCode(model: string, userCode: string): Promise<OAuthRecord | undefined>;
  /** Marks a record consumed at `at` (ms); an already consumed record keeps its first time. */
  consume(model: string, id: string, at: number): Promise<void>;
  destroy(model: string, id: string): Promise<void>;
  /** Deletes every record of `model` that belongs to the grant; returns how many. */
  revokeByGrantId(model: string, grantId: string): Promise<number>;
  /** Unexpired records of `model`, optionally of one account and/or client, ordered by id. */
  list(model: string, filter?: { readonly accountId?: string; readonly clientId?: string }): Promise<OAuthEntry[]>;
  /** Deletes records expired at `now` (ms); returns how many. */
  prune(now: number): Promise<number>;
}

/** A storage backend: its aggregates, migrations and lifecycle. */
export interface Store {
  readonly kind: 'memory' | 'sqlite' | 'postgres';
  readonly keys: KeyStore;
  readonly audit: AuditStore;
  readonly secrets: SecretStore;
  readonly oauth: OAuthStore;
  readonly users: UserStore;
  /** Applies pending migrations; returns the names applied. */
  migrate(): Promise<string[]>;
  close(): Promise<void>;
}
