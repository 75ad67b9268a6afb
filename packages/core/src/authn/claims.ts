/**
 * Claims → roles and scopes: how a token from an identity provider (Entra ID `roles`/`scp`,
 * Okta/Keycloak `groups`, RFC 9068 `scope`) becomes mcp-warden roles.
 */

/** One rule: a claim's values, each mapped to roles. */
export interface ClaimRoleRule {
  /** Dotted path of the claim, e.g. `groups`, `roles`, `realm_access.roles`. */
  readonly claim: string;
  /**
   * Claim value → roles. Values not listed grant nothing. Absent: the claim's values ARE role names
   * (for issuers that mint mcp-warden roles themselves, such as the built-in authorization server).
   */
  readonly values?: Readonly<Record<string, readonly string[]>>;
}

/** How an issuer's claims are read. */
export interface ClaimMapping {
  /** Claim holding the subject. @default 'sub' */
  readonly subject?: string;
  /** Claims holding scopes, first present wins. @default ['scope', 'scp'] */
  readonly scopes?: readonly string[];
  readonly roles?: readonly ClaimRoleRule[];
  /** Roles every principal of the issuer gets. */
  readonly defaultRoles?: readonly string[];
}

/**
 * The value at a dotted path (own properties only, so `__proto__` and friends resolve to nothing).
 * A claim whose whole name is the path wins, so namespaced claims such as Auth0's
 * `https://example.com/roles` are found too.
 */
export function claimAt(claims: Readonly<Record<string, unknown>>, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  let node: unknown = claims;
  for (const key of path.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** A claim's values as strings: a list of strings, or one string split on spaces (RFC 6749 §3.3 style). */
export function claimValues(value: unknown): string[] {
  if (typeof value === 'string') return value.split(' ').filter((v) => v !== '');
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string' && v !== '');
  return [];
}

/** The roles a token's claims map to, by the rules (deduplicated, in rule order). */
export function rolesFromClaims(claims: Readonly<Record<string, unknown>>, mapping: ClaimMapping): string[] {
  const roles = new Set<string>(mapping.defaultRoles ?? []);
  for (const rule of mapping.roles ?? []) {
    for (const value of claimValues(claimAt(claims, rule.claim))) {
      if (rule.values === undefined) roles.add(value);
      else if (Object.hasOwn(rule.values, value)) for (const role of rule.values[value] as readonly string[]) roles.add(role);
    }
  }
  return [...roles];
}

/** The token's scopes: the first present scope claim (`scope` space-separated, or Entra's `scp`). */
export function scopesFromClaims(claims: Readonly<Record<string, unknown>>, mapping: ClaimMapping): string[] {
  for (const claim of mapping.scopes ?? ['scope', 'scp']) {
    const value = claimAt(claims, claim);
    if (value !== undefined) return [...new Set(claimValues(value))];
  }
  return [];
}
