import { describe, expect, it } from 'vitest';
import { extractCredential } from '../../src/authn/extract.js';
import { codeOf, view } from '../helpers.js';


describe('extractCredential', () => {
  it('reads a bearer token, scheme case-insensitive', () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
      expect(extractCredential(view({ headers: [['authorization', `${scheme} abc.DEF-123_~+/=`]] }))).toEqual({
        source: 'bearer',
        value: 'abc.DEF-123_~+/=',
      });
    }
  });
  it('reads X-API-Key', () => {
    expect(extractCredential(view({ headers: [['x-api-key', 'mcpw_key']] }))).toEqual({ source: 'api-key', value: 'mcpw_key' });
  });
  it('can be told to ignore X-API-Key', () => {
    expect(extractCredential(view({ headers: [['x-api-key', 'k']] }), { apiKeyHeader: false })).toBeUndefined();
  });
  it('returns undefined without a credential, or with another scheme', () => {
    expect(extractCredential(view())).toBeUndefined();
    expect(extractCredential(view({ headers: [['authorization', 'Basic dXNlcjpwYXNz']] }))).toBeUndefined();
  });
  it('accepts the raw tutorial form only in raw mode', () => {
    expect(codeOf(() => extractCredential(view({ headers: [['authorization', 'secret123']] })))).toBe('credential_malformed');
    expect(extractCredential(view({ headers: [['authorization', 'secret123']] }), { rawAuthorization: true })).toEqual({
      source: 'raw-authorization',
      value: 'secret123',
    });
    expect(extractCredential(view({ headers: [['authorization', 'Bearer secret123']] }), { rawAuthorization: true })).toEqual({
      source: 'bearer',
      value: 'secret123',
    });
  });

  describe('Security', () => {
    it('refuses duplicate Authorization headers', () => {
      expect(codeOf(() => extractCredential(view({ headers: [['authorization', 'Bearer a'], ['authorization', 'Bearer b']] })))).toBe(
        'credential_malformed',
      );
    });
    it('refuses comma-joined credentials (how web Headers report duplicates)', () => {
      expect(codeOf(() => extractCredential(view({ headers: [['authorization', 'Bearer a, Bearer b']] })))).toBe('credential_malformed');
      expect(codeOf(() => extractCredential(view({ headers: [['authorization', 'a, b']] }), { rawAuthorization: true }))).toBe(
        'credential_malformed',
      );
      expect(codeOf(() => extractCredential(view({ headers: [['x-api-key', 'a, b']] })))).toBe('credential_malformed');
    });
    it('refuses two credentials at once (Authorization and X-API-Key)', () => {
      expect(codeOf(() => extractCredential(view({ headers: [['authorization', 'Bearer a'], ['x-api-key', 'b']] })))).toBe(
        'credential_malformed',
      );
    });
    it('never reads access_token from the query string', () => {
      expect(extractCredential(view({ url: '/mcp?access_token=secret123' }))).toBeUndefined();
      expect(codeOf(() => extractCredential(view({ url: '/mcp?access_token=x', headers: [['authorization', 'Bearer x']] })))).toBe(
        'credential_malformed',
      );
    });
    it('refuses quotes, spaces, CR/LF and control characters inside the token', () => {
      for (const value of ['Bearer "abc"', 'Bearer a b', 'Bearer a\r\nX-Evil: 1', 'Bearer a\u0000', 'Bearer ', 'Bearer a=b', 'Bearer tökén']) {
        expect(codeOf(() => extractCredential(view({ headers: [['authorization', value]] }))), JSON.stringify(value)).toBe('credential_malformed');
      }
      expect(codeOf(() => extractCredential(view({ headers: [['x-api-key', 'a\u0007b']] })))).toBe('credential_malformed');
    });
  });
});
