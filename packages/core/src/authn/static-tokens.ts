import { hash } from 'node:crypto';
import type { Credential, CredentialVerifier, Principal, VerificationResult } from '../types.js';

/** One static token: where its secret comes from, and who it stands for. */
export interface StaticTokenEntry {
  /** Principal id, shown in audit events and errors instead of the token. */
  readonly id: string;
  /** The secret itself (tests, the tutorial). Prefer `tokenEnv` or `sha256` in real deployments. */
  readonly token?: string;
  /** Name of an environment variable that holds the secret. */
  readonly tokenEnv?: string;
  /** Hex SHA-256 of the secret, so the config never holds it. */
  readonly sha256?: string;
  readonly roles: readonly string[];
  readonly scopes?: readonly string[];
  /** @default the id */
  readonly subject?: string;
}

/** Options of {@link staticTokens}. */
export interface StaticTokensOptions {
  /** Where `tokenEnv` names are looked up. @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * Leave credentials that match no token to the verifiers after this one (OAuth introspection)
   * instead of refusing them. @default false
   */
  readonly passUnknown?: boolean;
}

/** Hex SHA-256 of a string (UTF-8). */
export function sha256Hex(value: string): string {
  return hash('sha256', value, 'hex');
}

/**
 * A verifier over a fixed set of tokens (rung 1 of the hardening ladder). Secrets are kept only as
 * SHA-256 digests and a presented credential is looked up by its digest, so neither the comparison's
 * timing nor a heap dump reveals a token. Unknown credentials are refused (`unknown`), so put this
 * verifier last when others may recognise the same header.
 */
export function staticTokens(entries: readonly StaticTokenEntry[], options: StaticTokensOptions = {}): CredentialVerifier {
  const env = options.env ?? process.env;
  const byDigest = new Map<string, Principal>();
  const ids = new Set<string>();
  for (const [index, entry] of entries.entries()) {
    const where = `staticTokens[${index}]`;
    if (typeof entry.id !== 'string' || entry.id === '') throw new TypeError(`${where}.id must be a non-empty string`);
    if (ids.has(entry.id)) throw new TypeError(`${where}.id "${entry.id}" is used twice`);
    ids.add(entry.id);
    const sources = [entry.token, entry.tokenEnv, entry.sha256].filter((v) => v !== undefined).length;
    if (sources !== 1) throw new TypeError(`${where} (${entry.id}) needs exactly one of token, tokenEnv or sha256`);
    let digest: string;
    if (entry.sha256 !== undefined) {
      if (!/^[0-9a-f]{64}$/i.test(entry.sha256)) throw new TypeError(`${where}.sha256 must be 64 hex digits`);
      digest = entry.sha256.toLowerCase();
    } else {
      const secret = entry.token ?? env[entry.tokenEnv ?? ''];
      if (secret === undefined || secret === '') {
        throw new TypeError(
          entry.tokenEnv !== undefined
            ? `${where} (${entry.id}): environment variable ${entry.tokenEnv} is not set`
            : `${where}.token must be a non-empty string`,
        );
      }
      digest = sha256Hex(secret);
    }
    if (byDigest.has(digest)) throw new TypeError(`${where} (${entry.id}) has the same secret as another token`);
    if (!Array.isArray(entry.roles)) throw new TypeError(`${where}.roles must be an array of role names`);
    byDigest.set(digest, {
      id: entry.id,
      kind: 'static-token',
      subject: entry.subject ?? entry.id,
      roles: Object.freeze([...entry.roles]),
      scopes: Object.freeze([...(entry.scopes ?? [])]),
      claims: Object.freeze({}),
    });
  }

  return {
    name: 'static-tokens',
    verify(credential: Credential): VerificationResult | undefined {
      const digest = sha256Hex(credential.value);
      const principal = byDigest.get(digest);
      if (principal !== undefined) return { ok: true, principal };
      if (options.passUnknown === true) return undefined;
      return {
        ok: false,
        reason: 'unknown',
        description: 'The credential is not valid',
        credentialRef: `sha256:${digest.slice(0, 12)}`,
      };
    },
  };
}
