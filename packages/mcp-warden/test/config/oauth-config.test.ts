/** `mcp-warden config check` on the `auth.oauth` section: every mistake named with its key path. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { cli } from '../cli/run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'warden-oauth-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function check(yaml: string) {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  return cli(dir, ['--config', file, 'config', 'check']);
}

const base = `
store: { type: memory }
roles: { reader: [read], admin: [read, write, delete] }
`;

describe('config check: auth.oauth', () => {
  it('accepts a complete OAuth section (issuer with claim rules, built-in server, machine client)', async () => {
    const r = await check(`${base}
auth:
  oauth:
    scopes: { "mcp:read": [reader], "mcp:admin": [admin] }
    issuers:
      - name: corp
        issuer: https://login.example.com/tenant/v2.0
        audience: ["api://mcp-gateway"]
        claims:
          roles: [{ claim: roles, values: { MCP.Admin: [admin], MCP.Read: [reader] } }]
    authorizationServer:
      enabled: true
      clients: [{ clientId: bot, clientSecret: "0123456789abcdef0123", grantTypes: [client_credentials], roles: [reader] }]
`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('names undefined roles, shared-secret algorithms, plain-http issuers and a token mode without its token', async () => {
    const r = await check(`${base}
auth:
  oauth:
    scopes: { "mcp:read": [ghost] }
    issuers:
      - name: corp
        issuer: http://login.example.com
        claims: { roles: [{ claim: groups, values: { g: [phantom] } }] }
    authorizationServer:
      enabled: true
      registration: { mode: token }
      clients: [{ clientId: bot, clientSecret: "0123456789abcdef0123", roles: [nobody] }]
`);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('policy.scopes.mcp:read: "ghost" is not a role');
    expect(r.stderr).toContain('auth.oauth.issuers[0].issuer: "http://login.example.com" must be https');
    expect(r.stderr).toContain('auth.oauth.issuers[0].claims.roles[0].values: role "phantom" is not defined');
    expect(r.stderr).toContain('auth.oauth.authorizationServer.clients[0].roles: role "nobody" is not defined');
    expect(r.stderr).toContain('initialAccessToken: required when mode is token');
  });

  it('names what serve would refuse: a public URL with a path or plain http for the built-in server, duplicate or plain-http issuers, federation roles and issuer', async () => {
    const r = await check(`${base}
server: { publicUrl: "http://gateway.example.com/base" }
auth:
  oauth:
    scopes: { "mcp:read": [reader] }
    issuers:
      - { name: a, issuer: "https://idp.example.com" }
      - { name: b, issuer: "https://idp.example.com" }
    authorizationServer:
      enabled: true
      federation: { issuer: "http://sso.example.com", clientId: w, clientSecret: s, roles: [{ claim: groups, values: { g: [phantom] } }] }
`);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('needs the gateway at the root of its origin');
    expect(r.stderr).toContain('needs an https URL (got http://gateway.example.com/base)');
    expect(r.stderr).toContain('auth.oauth.issuers[1].issuer: https://idp.example.com is listed twice');
    expect(r.stderr).toContain('federation.issuer: "http://sso.example.com" must be https');
    expect(r.stderr).toContain('auth.oauth.authorizationServer.federation.roles[0].values: role "phantom" is not defined');
    const introspection = await check(`${base}
auth: { oauth: { issuers: [{ name: i, issuer: "http://idp.example.com", introspection: { clientId: c, clientSecret: s } }] } }
`);
    expect(introspection.code).toBe(2);
    expect(introspection.stderr).toContain('auth.oauth.issuers[0].issuer: "http://idp.example.com" must be https');
  });

  it('refuses HS256 and a scope token with a space at parse time, with the key path', () => {
    expect(() => parseConfig(`${base}\nauth: { oauth: { issuers: [{ name: x, issuer: "https://a.example", algorithms: [HS256] }] } }`, 'c.yaml')).toThrow(/auth\.oauth\.issuers\[0\]\.algorithms\[0\]/);
    expect(() => parseConfig(`${base}\nauth: { oauth: { scopes: { "mcp read": [reader] } } }`, 'c.yaml')).toThrow(/auth\.oauth\.scopes/);
  });
});
