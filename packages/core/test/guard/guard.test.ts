import { describe, expect, it } from 'vitest';
import { createGuard, hostNameOf, normaliseOrigin } from '../../src/guard/guard.js';
import { codeOf, view } from '../helpers.js';

const json: [string, string] = ['content-type', 'application/json'];
const localHost: [string, string] = ['host', '127.0.0.1:8080'];


describe('guard', () => {
  it('passes a plain local POST', () => {
    expect(codeOf(() => createGuard()(view({ headers: [localHost, json] })))).toBeUndefined();
  });

  describe('Origin', () => {
    const guard = createGuard({ allowedOrigins: ['https://app.example.com'] });
    it('refuses a present origin that is not allowed with 403', () => {
      expect(codeOf(() => guard(view({ headers: [localHost, json, ['origin', 'http://evil.example']] })))).toBe('origin_not_allowed');
    });
    it('accepts an allowed origin, comparing normalised origins', () => {
      expect(codeOf(() => guard(view({ headers: [localHost, json, ['origin', 'HTTPS://APP.example.com:443']] })))).toBeUndefined();
    });
    it('accepts loopback origins on any port for a loopback bind', () => {
      expect(codeOf(() => guard(view({ headers: [localHost, json, ['origin', 'http://localhost:5173']] })))).toBeUndefined();
      expect(codeOf(() => guard(view({ headers: [localHost, json, ['origin', 'http://[::1]:3000']] })))).toBeUndefined();
    });
    it('refuses loopback origins on a public bind unless listed', () => {
      const publicGuard = createGuard({ host: '0.0.0.0' });
      expect(codeOf(() => publicGuard(view({ headers: [['host', 'mcp.example.com'], json, ['origin', 'http://localhost:5173']] })))).toBe(
        'origin_not_allowed',
      );
    });
    it('refuses "null", opaque and malformed origins and repeated Origin headers', () => {
      for (const origin of ['null', 'file://', 'http://a.example/path', 'javascript:alert(1)', 'http://user@localhost']) {
        expect(codeOf(() => guard(view({ headers: [localHost, json, ['origin', origin]] }))), origin).toBe('origin_not_allowed');
      }
      expect(
        codeOf(() => guard(view({ headers: [localHost, json, ['origin', 'https://app.example.com'], ['origin', 'https://app.example.com']] }))),
      ).toBe('origin_not_allowed');
    });
    it('lets requests without Origin through (non-browser clients)', () => {
      expect(codeOf(() => guard(view({ headers: [localHost, json] })))).toBeUndefined();
    });
    it('rejects a misconfigured allow-list at creation, naming the option', () => {
      expect(() => createGuard({ allowedOrigins: ['*'] })).toThrow(/guard\.allowedOrigins/);
    });
  });

  describe('Host (DNS rebinding)', () => {
    it('refuses a foreign Host on a loopback bind', () => {
      expect(codeOf(() => createGuard()(view({ headers: [['host', 'evil.example'], json] })))).toBe('host_not_allowed');
    });
    it('refuses a missing or repeated Host on a loopback bind', () => {
      expect(codeOf(() => createGuard()(view({ headers: [json] })))).toBe('host_not_allowed');
      expect(codeOf(() => createGuard()(view({ headers: [localHost, localHost, json] })))).toBe('host_not_allowed');
    });
    it('checks nothing on a public bind without allowedHosts, and the list when given', () => {
      expect(codeOf(() => createGuard({ host: '0.0.0.0' })(view({ headers: [['host', 'any.example'], json] })))).toBeUndefined();
      const listed = createGuard({ host: '0.0.0.0', allowedHosts: ['mcp.example.com'] });
      expect(codeOf(() => listed(view({ headers: [['host', 'mcp.example.com:443'], json] })))).toBeUndefined();
      expect(codeOf(() => listed(view({ headers: [['host', 'other.example.com'], json] })))).toBe('host_not_allowed');
    });
    it('parses host names strictly', () => {
      expect(hostNameOf('LocalHost:8080')).toBe('localhost');
      expect(hostNameOf('[::1]:8080')).toBe('[::1]');
      expect(hostNameOf('evil.example@127.0.0.1')).toBeUndefined();
      expect(hostNameOf('127.0.0.1:80x')).toBeUndefined();
      expect(normaliseOrigin('https://a.example:443')).toBe('https://a.example');
    });
  });

  describe('accepted values remembered', () => {
    it('a Host, Origin or Content-Type accepted once still counts its repetitions and checks other values', () => {
      const guard = createGuard({ allowedOrigins: ['https://app.example.com'] });
      const origin: [string, string] = ['origin', 'https://app.example.com'];
      const ok = () => codeOf(() => guard(view({ headers: [localHost, json, origin] })));
      expect(ok()).toBeUndefined();
      expect(ok()).toBeUndefined();
      expect(codeOf(() => guard(view({ headers: [localHost, localHost, json, origin] })))).toBe('host_not_allowed');
      expect(codeOf(() => guard(view({ headers: [localHost, json, origin, origin] })))).toBe('origin_not_allowed');
      expect(codeOf(() => guard(view({ headers: [localHost, json, json, origin] })))).toBe('unsupported_media_type');
      expect(codeOf(() => guard(view({ headers: [['host', 'evil.example'], json, origin] })))).toBe('host_not_allowed');
      expect(codeOf(() => guard(view({ headers: [localHost, json, ['origin', 'https://evil.example']] })))).toBe('origin_not_allowed');
      expect(codeOf(() => guard(view({ headers: [localHost, ['content-type', 'text/plain'], origin] })))).toBe('unsupported_media_type');
      expect(ok()).toBeUndefined();
    });
    it('past the remembered values, every value is still checked', () => {
      const guard = createGuard();
      for (let port = 1; port <= 100; port++) {
        expect(codeOf(() => guard(view({ headers: [['host', `127.0.0.1:${port}`], json] })))).toBeUndefined();
        expect(codeOf(() => guard(view({ headers: [['host', `evil${port}.example`], json] })))).toBe('host_not_allowed');
      }
    });
  });

  describe('body, content type and protocol version', () => {
    const guard = createGuard({ maxBodyBytes: 100 });
    it('refuses a declared body over the limit before reading it', () => {
      expect(codeOf(() => guard(view({ headers: [localHost, json, ['content-length', '101']] })))).toBe('body_too_large');
      expect(codeOf(() => guard(view({ headers: [localHost, json, ['content-length', '100']] })))).toBeUndefined();
    });
    it('refuses a POST that is not JSON', () => {
      expect(codeOf(() => guard(view({ headers: [localHost, ['content-type', 'text/plain']] })))).toBe('unsupported_media_type');
      expect(codeOf(() => guard(view({ headers: [localHost] })))).toBe('unsupported_media_type');
      expect(codeOf(() => guard(view({ headers: [localHost, ['content-type', 'application/jsonx']] })))).toBe('unsupported_media_type');
      expect(codeOf(() => guard(view({ headers: [localHost, ['content-type', 'Application/JSON; charset=utf-8']] })))).toBeUndefined();
    });
    it('does not require a content type on GET and DELETE', () => {
      expect(codeOf(() => guard(view({ method: 'GET', headers: [localHost] })))).toBeUndefined();
      expect(codeOf(() => guard(view({ method: 'DELETE', headers: [localHost] })))).toBeUndefined();
    });
    it('refuses an unsupported MCP-Protocol-Version with 400 and accepts the three current revisions', () => {
      expect(codeOf(() => guard(view({ headers: [localHost, json, ['mcp-protocol-version', '1999-01-01']] })))).toBe('unsupported_protocol_version');
      for (const v of ['2025-06-18', '2025-11-25', '2026-07-28']) {
        expect(codeOf(() => guard(view({ headers: [localHost, json, ['mcp-protocol-version', v]] }))), v).toBeUndefined();
      }
    });
    it('validates maxBodyBytes at creation', () => {
      expect(() => createGuard({ maxBodyBytes: 0 })).toThrow(/maxBodyBytes/);
    });
  });
});
