/** The in-memory backend: for tests and for the library. Nothing survives the process. */
import type { AuditEvent } from '@mcp-warden/core';
import { GENESIS_HASH, sealEvents } from '../audit/chain.js';
import type { ApiKeyRecord, AuditHead, AuditQuery, AuditStore, KeyStore, StoredAuditEvent, Store } from './types.js';
import type { OAuthEntry, OAuthRecord, OAuthStore } from './types.js';
import type { StoredUser, StoredUserUpdate, UserStore } from './types.js';

class MemoryKeyStore implements KeyStore {
  readonly #keys = new Map<string, ApiKeyRecord>();
  #version = 0;

  async insertKey(record: ApiKeyRecord): Promise<void> {
    if (this.#keys.has(record.id)) throw new Error(`key ${record.id} already exists`);
    this.#keys.set(record.id, { ...record });
    this.#version++;
  }
  async getKey(id: string): Promise<ApiKeyRecord | undefined> {
    const record = this.#keys.get(id);
    return record === undefined ? undefined : { ...record };
  }
  async listKeys(): Promise<ApiKeyRecord[]> {
    return [...this.#keys.values()].sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id)).map((r) => ({ ...r }));
  }
  async revokeKey(id: string, at: number): Promise<boolean> {
    const record = this.#keys.get(id);
    if (record === undefined) return false;
    if (record.revokedAt === undefined) this.#keys.set(id, { ...record, revokedAt: at });
    this.#version++;
    return true;
  }
  async markRotated(oldId: string, newId: string, expiresAt: number): Promise<void> {
    const record = this.#keys.get(oldId);
    if (record === undefined) throw new Error(`key ${oldId} does not exist`);
    this.#keys.set(oldId, { ...record, replacedBy: newId, expiresAt: Math.min(record.expiresAt ?? Infinity, expiresAt) });
    this.#version++;
  }
  async touchKeys(uses: ReadonlyMap<string, number>): Promise<void> {
    for (const [id, at] of uses) {
      const record = this.#keys.get(id);
      if (record !== undefined && (record.lastUsedAt ?? 0) < at) this.#keys.set(id, { ...record, lastUsedAt: at });
    }
  }
  changeToken(): number {
    return this.#version;
  }
}

class MemoryAuditStore implements AuditStore {
  #events: StoredAuditEvent[] = [];
  #head: AuditHead = { seq: 0, hash: GENESIS_HASH, prunedSeq: 0, prunedHash: GENESIS_HASH };

  async append(events: readonly AuditEvent[]): Promise<readonly StoredAuditEvent[]> {
    const sealed = sealEvents(this.#head, events);
    const last = sealed.at(-1);
    if (last !== undefined) {
      this.#events.push(...sealed);
      this.#head = { ...this.#head, seq: last.seq, hash: last.hash };
    }
    return sealed;
  }
  async query(query: AuditQuery): Promise<StoredAuditEvent[]> {
    const since = query.since;
    let out = this.#events.filter(
      (e) =>
        (query.afterSeq === undefined || e.seq > query.afterSeq) &&
        (since === undefined || Date.parse(e.time) >= since) &&
        (query.principalId === undefined || e.principal?.id === query.principalId) &&
        (query.decision === undefined || e.decision === query.decision),
    );
    if (query.newestFirst === true) out = out.reverse();
    return query.limit === undefined ? out : out.slice(0, query.limit);
  }
  async head(): Promise<AuditHead> {
    return this.#head;
  }
  async prune(before: number): Promise<number> {
    const keep = this.#events.findIndex((e) => Date.parse(e.time) >= before);
    const cut = keep < 0 ? this.#events.length : keep;
    const last = this.#events[cut - 1];
    if (last === undefined) return 0;
    this.#events = this.#events.slice(cut);
    this.#head = { ...this.#head, prunedSeq: last.seq, prunedHash: last.hash };
    return cut;
  }
}

/** Users in a map by id, with the folded name and the federated identity kept unique by scanning. */
class MemoryUserStore implements UserStore {
  readonly #users = new Map<string, StoredUser>();

  async insertUser(record: StoredUser): Promise<boolean> {
    for (const user of this.#users.values()) {
      if (user.id === record.id || user.usernameFolded === record.usernameFolded) return false;
      if (record.federated !== undefined && user.federated?.issuer === record.federated.issuer && user.federated.subject === record.federated.subject) return false;
    }
    this.#users.set(record.id, copyUser(record));
    return true;
  }
  async getUser(id: string): Promise<StoredUser | undefined> {
    const user = this.#users.get(id);
    return user === undefined ? undefined : copyUser(user);
  }
  async getUserByFoldedName(usernameFolded: string): Promise<StoredUser | undefined> {
    const user = [...this.#users.values()].find((u) => u.usernameFolded === usernameFolded);
    return user === undefined ? undefined : copyUser(user);
  }
  async getUserByFederated(issuer: string, subject: string): Promise<StoredUser | undefined> {
    const user = [...this.#users.values()].find((u) => u.federated?.issuer === issuer && u.federated.subject === subject);
    return user === undefined ? undefined : copyUser(user);
  }
  async listUsers(): Promise<StoredUser[]> {
    return [...this.#users.values()].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map(copyUser);
  }
  async updateUser(id: string, update: StoredUserUpdate, options: { readonly ifPasswordHash?: string } = {}): Promise<boolean> {
    const user = this.#users.get(id);
    if (user === undefined) return false;
    if (options.ifPasswordHash !== undefined && user.passwordHash !== options.ifPasswordHash) return false;
    const { passwordHash, disabledAt, ...rest } = user;
    const nextHash = update.passwordHash === undefined ? passwordHash : (update.passwordHash ?? undefined);
    const nextDisabled = update.disabledAt === undefined ? disabledAt : (update.disabledAt ?? undefined);
    this.#users.set(id, {
      ...rest,
      ...(update.roles === undefined ? {} : { roles: [...update.roles] }),
      ...(nextHash === undefined ? {} : { passwordHash: nextHash }),
      ...(nextDisabled === undefined ? {} : { disabledAt: nextDisabled }),
      updatedAt: update.updatedAt,
    });
    return true;
  }
}

/** A copy that shares no arrays or objects with the stored one. */
function copyUser(user: StoredUser): StoredUser {
  return { ...user, roles: [...user.roles], ...(user.federated === undefined ? {} : { federated: { ...user.federated } }) };
}

interface MemoryOAuthRow {
  payload: Readonly<Record<string, unknown>>;
  expiresAt?: number;
  consumedAt?: number;
}

const oauthIndex = (payload: Readonly<Record<string, unknown>>, field: string): string | undefined => {
  const value = payload[field];
  return typeof value === 'string' ? value : undefined;
};

class MemoryOAuthStore implements OAuthStore {
  /** model → id → row. */
  readonly #models = new Map<string, Map<string, MemoryOAuthRow>>();

  #rows(model: string): Map<string, MemoryOAuthRow> {
    let rows = this.#models.get(model);
    if (rows === undefined) this.#models.set(model, (rows = new Map()));
    return rows;
  }
  static #live(row: MemoryOAuthRow | undefined, now = Date.now()): OAuthRecord | undefined {
    if (row === undefined || (row.expiresAt !== undefined && row.expiresAt <= now)) return undefined;
    return structuredClone(row);
  }
  #findBy(model: string, field: string, value: string): OAuthRecord | undefined {
    for (const row of this.#rows(model).values()) {
      if (oauthIndex(row.payload, field) === value) {
        const live = MemoryOAuthStore.#live(row);
        if (live !== undefined) return live;
      }
    }
    return undefined;
  }

  async upsert(model: string, id: string, payload: Readonly<Record<string, unknown>>, expiresAt?: number): Promise<void> {
    this.#rows(model).set(id, { payload: structuredClone(payload), ...(expiresAt === undefined ? {} : { expiresAt }) });
  }
  async insert(model: string, id: string, payload: Readonly<Record<string, unknown>>, expiresAt?: number): Promise<boolean> {
    if (this.#rows(model).has(id)) return false;
    await this.upsert(model, id, payload, expiresAt);
    return true;
  }
  async find(model: string, id: string): Promise<OAuthRecord | undefined> {
    return MemoryOAuthStore.#live(this.#rows(model).get(id));
  }
  async findByUid(model: string, uid: string): Promise<OAuthRecord | undefined> {
    return this.#findBy(model, 'uid', uid);
  }
  async findByUserCode(model: string, userCode: string): Promise<OAuthRecord | undefined> {
    return this.#findBy(model, 'userCode', userCode);
  }
  async consume(model: string, id: string, at: number): Promise<void> {
    const row = this.#rows(model).get(id);
    if (row !== undefined) row.consumedAt ??= at;
  }
  async destroy(model: string, id: string): Promise<void> {
    this.#rows(model).delete(id);
  }
  async revokeByGrantId(model: string, grantId: string): Promise<number> {
    const rows = this.#rows(model);
    let removed = 0;
    for (const [id, row] of rows) {
      if (oauthIndex(row.payload, 'grantId') === grantId) {
        rows.delete(id);
        removed++;
      }
    }
    return removed;
  }
  async list(model: string, filter: { readonly accountId?: string; readonly clientId?: string } = {}): Promise<OAuthEntry[]> {
    const now = Date.now();
    const out: OAuthEntry[] = [];
    for (const [id, row] of this.#rows(model)) {
      if (filter.accountId !== undefined && oauthIndex(row.payload, 'accountId') !== filter.accountId) continue;
      if (filter.clientId !== undefined && oauthIndex(row.payload, 'clientId') !== filter.clientId) continue;
      const live = MemoryOAuthStore.#live(row, now);
      if (live !== undefined) out.push({ id, ...live });
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
  async prune(now: number): Promise<number> {
    let removed = 0;
    for (const rows of this.#models.values()) {
      for (const [id, row] of rows) {
        if (row.expiresAt !== undefined && row.expiresAt <= now) {
          rows.delete(id);
          removed++;
        }
      }
    }
    return removed;
  }
}

/** A fresh in-memory store. */
export function createMemoryStore(): Store {
  const secrets = new Map<string, string>();
  return {
    kind: 'memory',
    keys: new MemoryKeyStore(),
    audit: new MemoryAuditStore(),
    oauth: new MemoryOAuthStore(),
    users: new MemoryUserStore(),
    secrets: {
      getOrCreate: async (name, create) => {
        if (!secrets.has(name)) secrets.set(name, create());
        return secrets.get(name) as string;
      },
    },
    migrate: async () => [],
    close: async () => {},
  };
}
