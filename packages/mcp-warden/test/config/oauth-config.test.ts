/** `mcp-warden config check`: the `auth.oauth` section, what serve builds per upstream, and the shipped examples; every mistake named with its key path. */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ROOT, cli } from '../cli/run-cli.js';

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

describe('config check: what serve builds per upstream', () => {
  it("refuses an HTTP upstream's header the gateway controls or with a control character, and a policy that does not compile, naming the upstream", async () => {
    const r = await check(`${base}
upstreams:
  remote: { type: http, url: "http://127.0.0.1:9/mcp", headers: { Connection: close } }
  other:
    type: http
    url: "http://127.0.0.1:9/mcp"
    headers: { X-Ok: "line\\nbreak" }
    policy:
      deny: { tools: ["a\\u0001"] }
`);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('upstreams.remote.headers.Connection: this header is set by the gateway and cannot be configured');
    expect(r.stderr).toContain('upstreams.other.headers.X-Ok: the value contains a control character');
    expect(r.stderr).toContain('upstreams.other.policy, merged with the global roles and deny lists: policy.deny.tools[0]: "a\\u0001" is not a valid pattern');
  });

  it('accepts the examples the project ships, whose secrets all come from ${ENV}', async () => {
    const examples = ['examples/gateway/mcp-warden.yaml', ...readdirSync(`${ROOT}examples/oauth`).map((f) => `examples/oauth/${f}`)];
    expect(examples.length).toBeGreaterThan(5);
    let secrets = 0;
    for (const example of examples) {
      const text = readFileSync(`${ROOT}${example}`, 'utf8');
      const lines = text.split('\n').filter((line) => !line.trimStart().startsWith('#'));
      // Every secret-looking value is a reference, never written out.
      for (const line of lines) {
        const secret = /\b(clientSecret|initialAccessToken|sessionSecret|metricsToken|password|Authorization|X-Api-Key|token)\b\s*:\s*(.+)$/i.exec(line);
        if (secret === null) continue;
        secrets += 1;
        expect(secret[2], `${example}: ${line.trim()}`).toMatch(/\$\{[A-Z0-9_]+\}/);
      }
      const env = Object.fromEntries([...lines.join('\n').matchAll(/\$\{([A-Z0-9_]+)\}/g)].map((m) => [m[1] as string, 'example-value-0123456789abcdef0123']));
      const r = await cli(ROOT, ['--config', `${ROOT}${example}`, 'config', 'check'], env);
      expect(r.stderr, example).toBe('');
      expect(r.code, example).toBe(0);
    }
    // The check above looked at something: the examples hold upstream credentials and client secrets.
    expect(secrets).toBeGreaterThanOrEqual(8);
  });
});
