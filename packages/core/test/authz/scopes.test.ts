import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Policy } from '../../src/authz/policy.js';
import { createWarden } from '../../src/pipeline.js';
import type { CredentialVerifier, McpAction, Principal } from '../../src/types.js';
import { view } from '../helpers.js';

const tool = (target: string): McpAction => ({ method: 'tools/call', kind: 'tool', id: 1, target });

function policy(): Policy {
  const p = new Policy({
    roles: { reader: ['read'], writer: ['read', 'write'], admin: ['read', 'write', 'delete'] },
    scopes: { 'mcp:read': ['reader'], 'mcp:write': ['writer'], 'mcp:admin': ['admin'] },
  });
  p.annotations.learn([
    { name: 'look', annotations: { readOnlyHint: true } },
    { name: 'edit', annotations: { readOnlyHint: false, destructiveHint: false } },
    { name: 'drop' },
  ]);
  return p;
}

function oauth(roles: string[], scopes: string[]): Principal {
  return { id: 'idp:alice', kind: 'jwt', subject: 'alice', roles, scopes, claims: {}, scopeLimited: true };
}

describe('Policy scopes (OAuth tokens)', () => {
  const p = policy();

  it('allows what both the roles and the scopes allow', () => {
    expect(p.decide(oauth(['admin'], ['mcp:read']), tool('look')).allow).toBe(true);
    expect(p.decide(oauth(['admin'], ['mcp:write']), tool('edit')).allow).toBe(true);
    expect(p.decide(oauth(['admin'], ['mcp:admin']), tool('drop')).allow).toBe(true);
  });

  it('names the first scope that would allow an action the roles allow (step-up)', () => {
    const d = p.decide(oauth(['admin'], ['mcp:read']), tool('edit'));
    expect(d).toMatchObject({ allow: false, rule: 'scope:insufficient', scopes: ['mcp:write'], missingPermission: 'scope:mcp:write' });
    expect(d.reason).toMatch(/token's scopes \(mcp:read\) do not allow it; scope mcp:write would/);
    expect(p.decide(oauth(['admin'], []), tool('drop'))).toMatchObject({ allow: false, scopes: ['mcp:admin'] });
  });

  it('never offers a scope when the roles themselves refuse: no step-up can help', () => {
    const d = p.decide(oauth(['reader'], ['mcp:admin']), tool('edit'));
    expect(d.allow).toBe(false);
    expect(d.scopes).toBeUndefined();
    expect(d.rule).toBe('default-deny');
  });

  it('ignores scopes for credentials that are not scope-limited (static tokens, API keys)', () => {
    const key: Principal = { id: 'k', kind: 'api-key', subject: 'k', roles: ['admin'], scopes: [], claims: {} };
    expect(p.decide(key, tool('drop')).allow).toBe(true);
  });

  it('does not limit lifecycle messages and list requests by scope (lists are filtered instead)', () => {
    const none = oauth(['reader'], []);
    expect(p.decide(none, { method: 'initialize', kind: 'lifecycle', id: 1 }).allow).toBe(true);
    expect(p.decide(none, { method: 'tools/list', kind: 'list', id: 1, list: 'tools' }).allow).toBe(true);
  });

  it('limits a subscriptions/listen that follows resources by scope, as resources/subscribe is', () => {
    const listen: McpAction = { method: 'subscriptions/listen', kind: 'lifecycle', id: 1, subscriptions: ['file:///docs/a.md'] };
    expect(p.decide(oauth(['reader'], ['mcp:read']), listen).allow).toBe(true);
    expect(p.decide(oauth(['reader'], []), listen)).toMatchObject({ allow: false, rule: 'scope:insufficient', scopes: ['mcp:read'] });
    expect(p.decide(oauth(['reader'], []), { method: 'subscriptions/listen', kind: 'lifecycle', id: 1 }).allow).toBe(true);
  });

  it('refuses unknown scopes and scopes naming unknown roles at construction', () => {
    expect(() => new Policy({ roles: { reader: ['read'] }, scopes: { 'mcp:x': ['ghost'] } })).toThrow(/policy\.scopes\.mcp:x: "ghost" is not a role/);
    expect(p.decide(oauth(['admin'], ['unknown:scope']), tool('look'))).toMatchObject({ allow: false, scopes: ['mcp:read'] });
  });

  it('property: a scope-limited principal is allowed only what its roles and its scopes each allow', () => {
    const roleNames = ['reader', 'writer', 'admin', 'ghost'];
    const scopeNames = ['mcp:read', 'mcp:write', 'mcp:admin', 'other'];
    const scopeRoles: Record<string, string[]> = { 'mcp:read': ['reader'], 'mcp:write': ['writer'], 'mcp:admin': ['admin'] };
    fc.assert(
      fc.property(
        fc.subarray(roleNames),
        fc.subarray(scopeNames),
        fc.constantFrom('look', 'edit', 'drop', 'unknown'),
        (roles, scopes, name) => {
          const action = tool(name);
          const d = p.decide(oauth(roles, scopes), action);
          const byRoles = p.decide({ ...oauth(roles, []), scopeLimited: false }, action).allow;
          const byScopes = p.decide({ ...oauth(scopes.flatMap((s) => scopeRoles[s] ?? []), []), scopeLimited: false }, action).allow;
          expect(d.allow).toBe(byRoles && byScopes);
          if (d.scopes !== undefined) {
            // The offered scope really cures it.
            expect(p.decide(oauth(roles, [...scopes, ...d.scopes]), action).allow).toBe(true);
          }
        },
      ),
    );
  });
});

describe('pipeline step-up: 403 insufficient_scope', () => {
  const verifier: CredentialVerifier = {
    name: 'test-oauth',
    verify: (c) => {
      const { roles, scopes } = JSON.parse(Buffer.from(c.value, 'base64url').toString('utf8')) as { roles: string[]; scopes: string[] };
      return { ok: true, principal: oauth(roles, scopes) };
    },
  };
  const warden = createWarden({
    verifiers: [verifier],
    policy: policy(),
    resourceMetadataUrl: 'https://gw.example/.well-known/oauth-protected-resource/mcp',
  });
  /** A test token: `<roles,comma-separated>|<scopes, space-separated>`, carried base64url-encoded. */
  const post = (spec: string, body: unknown, extra: [string, string][] = []) =>
    warden.handle(
      view({ headers: [['host', '127.0.0.1:3000'], ['content-type', 'application/json'], ['authorization', `Bearer ${encode(spec)}`], ...extra] }),
      { read: async () => JSON.stringify(body) },
    );
  function encode(spec: string): string {
    const [roles = '', scopes = ''] = spec.split('|');
    return Buffer.from(JSON.stringify({ roles: roles.split(',').filter(Boolean), scopes: scopes.split(' ').filter(Boolean) })).toString('base64url');
  }
  const call = (name: string) => ({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name, arguments: {} } });

  it('answers 403 with the challenge naming the needed scope plus those held (2025 revisions)', async () => {
    const r = await post('admin|mcp:read offline_access', call('edit'));
    expect(r.type).toBe('respond');
    if (r.type !== 'respond') return;
    expect(r.response.status).toBe(403);
    const challenge = r.response.headers['www-authenticate'] as string;
    expect(challenge).toMatch(/^Bearer error="insufficient_scope", error_description="(?:[^"\\]|\\.)+", scope="mcp:read mcp:write", resource_metadata="https:\/\/gw\.example\/\.well-known\/oauth-protected-resource\/mcp"$/);
    expect(/scope="([^"]*)"/.exec(challenge)?.[1]?.split(' ')).not.toContain('offline_access');
    const body = JSON.parse(r.response.body) as { id: number; error: { code: number; data: { permission: string } } };
    expect(body.id).toBe(7);
    expect(body.error.code).toBe(-32003);
    expect(body.error.data.permission).toBe('scope:mcp:write');
  });

  it('names only the scopes of the current operation for 2026-07-28 clients', async () => {
    const r = await post('admin|mcp:read', call('drop'), [['mcp-protocol-version', '2026-07-28'], ['mcp-method', 'tools/call'], ['mcp-name', 'drop']]);
    expect(r.type === 'respond' && r.response.headers['www-authenticate']).toMatch(/scope="mcp:admin"/);
  });

  it('keeps the JSON-RPC denial when the roles refuse, and when a batch mixes both kinds of refusal', async () => {
    const r = await post('reader|mcp:admin', call('edit'));
    expect(r.type === 'respond' && r.response.status).toBe(200);
    const batch = await post('writer|mcp:read', [call('edit'), { ...call('drop'), id: 8 }]);
    expect(batch.type === 'respond' && batch.response.status).toBe(200);
  });

  it('forwards once the token holds the scope', async () => {
    expect((await post('admin|mcp:read mcp:write', call('edit'))).type).toBe('forward');
  });
});
