import { describe, expect, it } from 'vitest';
import { type ClaimMapping, claimAt, rolesFromClaims, scopesFromClaims } from '../../src/authn/claims.js';
import { canonicalResourceUri, resourceMetadata, resourceMetadataUrl } from '../../src/authn/resource-metadata.js';

describe('claims → roles and scopes', () => {
  const mapping: ClaimMapping = {
    roles: [
      { claim: 'groups', values: { 'mcp-admins': ['admin'], 'mcp-readers': ['reader'] } },
      { claim: 'realm_access.roles', values: { writer: ['writer'] } },
    ],
    defaultRoles: ['member'],
  };

  it('maps listed values of lists, space-separated strings and nested claims; ignores the rest', () => {
    expect(rolesFromClaims({ groups: ['mcp-readers', 'sales'], realm_access: { roles: ['writer'] } }, mapping)).toEqual(['member', 'reader', 'writer']);
    expect(rolesFromClaims({ groups: 'mcp-admins mcp-readers' }, mapping)).toEqual(['member', 'admin', 'reader']);
    expect(rolesFromClaims({ groups: 42 }, mapping)).toEqual(['member']);
  });

  it('finds namespaced claims whose names hold dots (Auth0 `https://example.com/roles`)', () => {
    expect(rolesFromClaims({ 'https://example.com/roles': ['mcp-admins'] }, { roles: [{ claim: 'https://example.com/roles', values: { 'mcp-admins': ['admin'] } }] })).toEqual(['admin']);
    expect(claimAt({ 'a.b': 1, a: { b: 2 } }, 'a.b')).toBe(1);
    expect(claimAt({ a: { b: 2 } }, 'a.b')).toBe(2);
  });

  it('takes claim values as role names when a rule lists no values (issuers that mint roles)', () => {
    expect(rolesFromClaims({ roles: ['reader', 'admin'] }, { roles: [{ claim: 'roles' }] })).toEqual(['reader', 'admin']);
  });

  it('reads scope (space-separated) before Entra scp (string or list)', () => {
    expect(scopesFromClaims({ scope: 'a b a' }, {})).toEqual(['a', 'b']);
    expect(scopesFromClaims({ scp: ['x', 'y'] }, {})).toEqual(['x', 'y']);
    expect(scopesFromClaims({ scp: 'x y' }, {})).toEqual(['x', 'y']);
    expect(scopesFromClaims({}, {})).toEqual([]);
  });

  describe('Security', () => {
    it('a dotted path never walks into the prototype chain', () => {
      expect(claimAt({}, '__proto__.constructor')).toBeUndefined();
      expect(claimAt({ a: {} }, 'a.toString')).toBeUndefined();
      expect(rolesFromClaims({}, { roles: [{ claim: 'constructor.name' }] })).toEqual([]);
      expect(rolesFromClaims({ groups: ['toString', '__proto__'] }, mapping)).toEqual(['member']);
    });
  });
});

describe('protected resource metadata (RFC 9728)', () => {
  it('canonicalises the resource: lower-case scheme and host, no fragment, query or trailing slash', () => {
    expect(canonicalResourceUri('HTTPS://GW.Example:443/mcp/x/#frag')).toBe('https://gw.example/mcp/x');
    expect(() => canonicalResourceUri('ftp://x')).toThrow(/http\(s\)/);
  });

  it('puts the metadata at the path-inserted well-known URL', () => {
    expect(resourceMetadataUrl('https://gw.example/mcp/everything')).toBe('https://gw.example/.well-known/oauth-protected-resource/mcp/everything');
    expect(resourceMetadataUrl('https://gw.example/')).toBe('https://gw.example/.well-known/oauth-protected-resource');
  });

  it('lists the authorization servers and scopes, never offline_access, header tokens only', () => {
    expect(resourceMetadata({ resource: 'https://gw.example/mcp/', authorizationServers: ['https://gw.example'], scopesSupported: ['mcp:read', 'offline_access'] })).toEqual({
      resource: 'https://gw.example/mcp',
      authorization_servers: ['https://gw.example'],
      bearer_methods_supported: ['header'],
      scopes_supported: ['mcp:read'],
    });
    expect(() => resourceMetadata({ resource: 'https://gw.example/mcp', authorizationServers: [] })).toThrow(/at least one/);
  });
});
