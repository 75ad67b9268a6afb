/**
 * People: local accounts with argon2id password hashes, and federated accounts (an identity at an
 * upstream OIDC provider) whose roles are refreshed at each login. The CLI, the first run of `serve`
 * and the built-in authorization server all go through this service; none of them sees a hash.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type Algorithm, type Options as Argon2Options, hash, parseOptions, verify } from '@node-rs/argon2';
import type { StoredUser, UserStore } from '../store/types.js';
import { UserAccountError } from './errors.js';
import { foldUsername, normalizeUsername, sanitizeUsername, usernameProblem } from './username.js';

/** A user as callers see it: never the password hash. Times in ms since the epoch. */
export interface UserRecord {
  readonly id: string;
  /** The name as stored (NFC-normalised). */
  readonly username: string;
  readonly roles: readonly string[];
  readonly disabled: boolean;
  readonly disabledAt?: number;
  /** Whether the account can log in with a password (federated-only accounts cannot). */
  readonly hasPassword: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** The identity at an upstream provider, for federated accounts. */
  readonly federated?: { readonly issuer: string; readonly subject: string };
}

/** Who logged in: what an authorization server puts in its session and tokens. */
export interface AuthenticatedUser {
  readonly id: string;
  readonly username: string;
  readonly roles: readonly string[];
}

/**
 * argon2id cost parameters. The defaults are OWASP's first recommendation for argon2id
 * (m = 19 MiB, t = 2, p = 1); hashes made with other parameters are redone at the next login.
 */
export interface PasswordHashing {
  /** Memory per hash, in KiB. @default 19456 */
  readonly memoryCostKib?: number;
  /** Passes over the memory. @default 2 */
  readonly timeCost?: number;
  /** Lanes. @default 1 */
  readonly parallelism?: number;
}

/** Options of {@link UserService}. */
export interface UserServiceOptions {
  readonly hashing?: PasswordHashing;
  /** The clock, in ms since the epoch. @default Date.now */
  readonly now?: () => number;
  /** Told when a successful login could not store its rehashed password (the login still succeeds). */
  readonly onError?: (error: unknown, where: string) => void;
}

/** The shortest password accepted, in characters (code points after NFKC). */
export const MIN_PASSWORD_LENGTH = 12;
/** The longest password accepted, in UTF-8 bytes after NFKC. */
export const MAX_PASSWORD_BYTES = 1024;

// `Algorithm` and `Version` are ambient const enums, which isolated modules cannot read: their values.
const ARGON2ID = 2 as Algorithm;
const VERSION_0X13 = 1;
const OUTPUT_BYTES = 32;

/** A random password of 24 base64url characters (144 bits), for `users add` and the demo user. */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

/** A new user id: `usr_` and 16 base64url characters (96 random bits). */
function newUserId(): string {
  return `usr_${randomBytes(12).toString('base64url')}`;
}

/**
 * NIST SP 800-63B §5.1.1.2: passwords are compared after Unicode normalisation (NFKC), so the same
 * characters typed on different systems verify alike.
 */
function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

function view(user: StoredUser): UserRecord {
  return {
    id: user.id,
    username: user.username,
    roles: [...user.roles],
    disabled: user.disabledAt !== undefined,
    ...(user.disabledAt === undefined ? {} : { disabledAt: user.disabledAt }),
    hasPassword: user.passwordHash !== undefined,
    createdAt: user.createdAt,
    updatedAt: user.updatedAt,
    ...(user.federated === undefined ? {} : { federated: { ...user.federated } }),
  };
}

function checkRoles(roles: readonly string[]): string[] {
  if (!Array.isArray(roles)) throw new TypeError('roles must be an array of role names');
  for (const role of roles) {
    if (typeof role !== 'string' || role === '' || /\p{C}/u.test(role)) throw new TypeError(`invalid role name ${JSON.stringify(role)}`);
  }
  return [...new Set(roles)];
}

function checkPositiveInteger(value: number, name: string, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) throw new TypeError(`${name} must be an integer from 1 to ${max}, got ${value}`);
  return value;
}

/** A short, stable tag of a federated identity, to tell apart two people who want the same name. */
function identityTag(issuer: string, subject: string): string {
  return createHash('sha256').update(`${issuer}\n${subject}`).digest('hex').slice(0, 8);
}

/** User accounts over a {@link UserStore}. */
export class UserService {
  readonly #store: UserStore;
  readonly #now: () => number;
  readonly #onError: (error: unknown, where: string) => void;
  readonly #argon2: Argon2Options & { readonly memoryCost: number; readonly timeCost: number; readonly parallelism: number };
  #dummyHash: Promise<string> | undefined;

  constructor(store: UserStore, options: UserServiceOptions = {}) {
    this.#store = store;
    this.#now = options.now ?? Date.now;
    this.#onError = options.onError ?? (() => {});
    const parallelism = checkPositiveInteger(options.hashing?.parallelism ?? 1, 'hashing.parallelism', 255);
    const memoryCost = checkPositiveInteger(options.hashing?.memoryCostKib ?? 19_456, 'hashing.memoryCostKib', 4_194_304);
    if (memoryCost < 8 * parallelism) throw new TypeError(`hashing.memoryCostKib must be at least 8 × parallelism (${8 * parallelism}), got ${memoryCost}`);
    const timeCost = checkPositiveInteger(options.hashing?.timeCost ?? 2, 'hashing.timeCost', 64);
    this.#argon2 = { algorithm: ARGON2ID, memoryCost, timeCost, parallelism, outputLen: OUTPUT_BYTES };
  }

  /**
   * Creates a local account. Throws {@link UserAccountError} `invalid_username`, `weak_password` or
   * `username_taken`; a TypeError for malformed role names.
   */
  async add(username: string, password: string, roles: readonly string[]): Promise<UserRecord> {
    const name = this.#checkedUsername(username);
    const folded = foldUsername(name);
    const checkedRoles = checkRoles(roles);
    const normalized = this.#checkedPassword(password, folded);
    if ((await this.#store.getUserByFoldedName(folded)) !== undefined) throw taken(name);
    const now = this.#now();
    const record: StoredUser = {
      id: newUserId(),
      username: name,
      usernameFolded: folded,
      passwordHash: await hash(normalized, this.#argon2),
      roles: checkedRoles,
      createdAt: now,
      updatedAt: now,
    };
    // The unique folded name decides between two concurrent adds of one name.
    if (!(await this.#store.insertUser(record))) throw taken(name);
    return view(record);
  }

  /**
   * Checks a username and password. Answers undefined, without saying why, for an unknown name, a
   * disabled or federated-only account, or a wrong password. Every answer costs one argon2
   * verification (unknown names are checked against a dummy hash), so timing does not tell which
   * names exist. A hash made with other parameters than the current ones is redone on success.
   */
  async authenticate(username: string, password: string): Promise<AuthenticatedUser | undefined> {
    if (typeof username !== 'string' || typeof password !== 'string') return undefined;
    const name = normalizeUsername(username);
    const user = usernameProblem(name) === undefined ? await this.#store.getUserByFoldedName(foldUsername(name)) : undefined;
    const normalized = normalizePassword(password);
    // Longer than any password we accept: nothing to verify (and no large input to hash).
    if (Buffer.byteLength(normalized) > MAX_PASSWORD_BYTES) return undefined;
    const stored = user?.passwordHash;
    const matches = await this.#verify(stored ?? (await this.#dummy()), normalized, user?.id);
    if (!matches || user === undefined || stored === undefined || user.disabledAt !== undefined) return undefined;
    if (this.#needsRehash(stored)) await this.#rehash(user, stored, normalized);
    return { id: user.id, username: user.username, roles: [...user.roles] };
  }

  async get(id: string): Promise<UserRecord | undefined> {
    const user = await this.#store.getUser(id);
    return user === undefined ? undefined : view(user);
  }

  /** The account with this name, compared folded (`Alice` finds `alice`). */
  async findByUsername(username: string): Promise<UserRecord | undefined> {
    const user = await this.#find(username);
    return user === undefined ? undefined : view(user);
  }

  /** Every account, oldest first. */
  async list(): Promise<UserRecord[]> {
    return (await this.#store.listUsers()).map(view);
  }

  /** Disables an account (it can no longer log in); false when there is no such account. A disabled account keeps its time. */
  async disable(username: string): Promise<boolean> {
    const user = await this.#find(username);
    if (user === undefined) return false;
    if (user.disabledAt !== undefined) return true;
    const now = this.#now();
    return this.#store.updateUser(user.id, { disabledAt: now, updatedAt: now });
  }

  /** Enables a disabled account; false when there is no such account. */
  async enable(username: string): Promise<boolean> {
    const user = await this.#find(username);
    if (user === undefined) return false;
    if (user.disabledAt === undefined) return true;
    return this.#store.updateUser(user.id, { disabledAt: null, updatedAt: this.#now() });
  }

  /** Replaces an account's roles; false when there is no such account. A federated account's roles are replaced again at its next login. */
  async setRoles(username: string, roles: readonly string[]): Promise<boolean> {
    const checkedRoles = checkRoles(roles);
    const user = await this.#find(username);
    if (user === undefined) return false;
    return this.#store.updateUser(user.id, { roles: checkedRoles, updatedAt: this.#now() });
  }

  /** Sets a new password (throws `weak_password`); false when there is no such account. */
  async setPassword(username: string, password: string): Promise<boolean> {
    const user = await this.#find(username);
    if (user === undefined) return false;
    const normalized = this.#checkedPassword(password, user.usernameFolded);
    return this.#store.updateUser(user.id, { passwordHash: await hash(normalized, this.#argon2), updatedAt: this.#now() });
  }

  /**
   * The account of an identity at an upstream provider (its issuer and `sub`), created at its first
   * login and given `roles` at every login. The identity, never the name, links a login to an
   * account: a name another account already has gets a tag (`alice#1a2b3c4d`); a name that is not
   * acceptable is cleaned, or replaced by `user#<tag>`. Throws `disabled` for a disabled account.
   */
  async upsertFederated(issuer: string, subject: string, username: string, roles: readonly string[]): Promise<AuthenticatedUser> {
    if (typeof issuer !== 'string' || issuer === '') throw new TypeError('a federated identity needs an issuer');
    if (typeof subject !== 'string' || subject === '') throw new TypeError('a federated identity needs a subject');
    const checkedRoles = checkRoles(roles);
    const existing = await this.#store.getUserByFederated(issuer, subject);
    if (existing !== undefined) return this.#refreshFederated(existing, checkedRoles);

    const tag = identityTag(issuer, subject);
    const base = sanitizeUsername(String(username));
    const candidates = base === '' ? [`user#${tag}`] : [base, `${sanitizeUsername(base, 55)}#${tag}`];
    for (const name of candidates) {
      const now = this.#now();
      const record: StoredUser = {
        id: newUserId(),
        username: name,
        usernameFolded: foldUsername(name),
        roles: checkedRoles,
        createdAt: now,
        updatedAt: now,
        federated: { issuer, subject },
      };
      if (await this.#store.insertUser(record)) return { id: record.id, username: record.username, roles: checkedRoles };
      // The same identity's first two logins at once: the other one created the account.
      const raced = await this.#store.getUserByFederated(issuer, subject);
      if (raced !== undefined) return this.#refreshFederated(raced, checkedRoles);
    }
    throw new UserAccountError('username_taken', `no free username for the federated identity (tried ${candidates.map((c) => JSON.stringify(c)).join(', ')})`);
  }

  async #refreshFederated(user: StoredUser, roles: string[]): Promise<AuthenticatedUser> {
    if (user.disabledAt !== undefined) throw new UserAccountError('disabled', `user "${user.username}" is disabled`);
    await this.#store.updateUser(user.id, { roles, updatedAt: this.#now() });
    return { id: user.id, username: user.username, roles };
  }

  async #find(username: string): Promise<StoredUser | undefined> {
    if (typeof username !== 'string') return undefined;
    const name = normalizeUsername(username);
    if (usernameProblem(name) !== undefined) return undefined;
    return this.#store.getUserByFoldedName(foldUsername(name));
  }

  #checkedUsername(username: string): string {
    if (typeof username !== 'string') throw new UserAccountError('invalid_username', 'a username must be a string');
    const name = normalizeUsername(username);
    const problem = usernameProblem(name);
    if (problem !== undefined) throw new UserAccountError('invalid_username', problem);
    return name;
  }

  /** The normalised password, or `weak_password` (the message never holds the password). */
  #checkedPassword(password: string, usernameFolded: string): string {
    if (typeof password !== 'string') throw new UserAccountError('weak_password', 'a password must be a string');
    const normalized = normalizePassword(password);
    if ([...normalized].length < MIN_PASSWORD_LENGTH) throw new UserAccountError('weak_password', `a password needs at least ${MIN_PASSWORD_LENGTH} characters`);
    if (Buffer.byteLength(normalized) > MAX_PASSWORD_BYTES) throw new UserAccountError('weak_password', `a password has at most ${MAX_PASSWORD_BYTES} bytes`);
    if (foldUsername(normalized) === usernameFolded) throw new UserAccountError('weak_password', 'a password cannot be the username');
    return normalized;
  }

  /** One argon2 verification. A stored hash that cannot be read is reported by account id, never by content. */
  async #verify(stored: string, password: string, userId: string | undefined): Promise<boolean> {
    try {
      return await verify(stored, password);
    } catch {
      throw new Error(`the stored password hash of user ${userId ?? '(dummy)'} cannot be read`);
    }
  }

  /** A hash of a random password with the current parameters, made once: what unknown names are checked against. */
  #dummy(): Promise<string> {
    this.#dummyHash ??= hash(randomBytes(32), this.#argon2);
    return this.#dummyHash;
  }

  #needsRehash(stored: string): boolean {
    try {
      const used = parseOptions(stored);
      return (
        used.algorithm !== ARGON2ID ||
        used.version !== VERSION_0X13 ||
        used.memoryCost !== this.#argon2.memoryCost ||
        used.timeCost !== this.#argon2.timeCost ||
        used.parallelism !== this.#argon2.parallelism ||
        used.outputLen !== OUTPUT_BYTES
      );
    } catch {
      return true;
    }
  }

  /** Replaces a hash made with old parameters, unless the password changed meanwhile. Failures do not fail the login. */
  async #rehash(user: StoredUser, stored: string, password: string): Promise<void> {
    try {
      const fresh = await hash(password, this.#argon2);
      await this.#store.updateUser(user.id, { passwordHash: fresh, updatedAt: this.#now() }, { ifPasswordHash: stored });
    } catch (error) {
      this.#onError(error, 'users.rehash');
    }
  }
}

function taken(username: string): UserAccountError {
  return new UserAccountError('username_taken', `the username "${username}" is taken (names are compared ignoring case and width)`);
}
