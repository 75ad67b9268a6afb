import { describe, expect, it } from 'vitest';
import { WardenError, quoteAuthParam, toErrorResponse } from '../src/errors.js';

describe('toErrorResponse (the status table)', () => {
  it('answers a missing credential with 401 and a bare challenge: no error code (RFC 6750 §3.1)', () => {
    const r = toErrorResponse(new WardenError('credential_missing', 'Unauthorized'));
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer');
  });
  it('names the resource metadata and scopes in the challenge when configured', () => {
    const r = toErrorResponse(new WardenError('credential_missing', 'x'), {
      resourceMetadataUrl: 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp',
      challengeScopes: ['mcp:read', 'mcp:write'],
    });
    expect(r.headers['www-authenticate']).toBe(
      'Bearer scope="mcp:read mcp:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"',
    );
  });
  it('answers a bad credential with 401 invalid_token, or 403 in tutorial mode', () => {
    const error = new WardenError('credential_invalid', 'The credential is not valid');
    expect(toErrorResponse(error).status).toBe(401);
    expect(toErrorResponse(error).headers['www-authenticate']).toBe('Bearer error="invalid_token", error_description="The credential is not valid"');
    expect(toErrorResponse(error, { invalidCredentialStatus: 403 }).status).toBe(403);
  });
  it('answers a malformed header with 400 invalid_request', () => {
    const r = toErrorResponse(new WardenError('credential_malformed', 'bad'));
    expect(r.status).toBe(400);
    expect(r.headers['www-authenticate']).toContain('error="invalid_request"');
  });
  it('maps transport refusals to their statuses with a JSON-RPC body and no challenge', () => {
    const cases: [ConstructorParameters<typeof WardenError>[0], number, number][] = [
      ['origin_not_allowed', 403, -32000],
      ['host_not_allowed', 403, -32000],
      ['body_too_large', 413, -32000],
      ['unsupported_media_type', 415, -32000],
      ['unsupported_protocol_version', 400, -32000],
      ['parse_error', 400, -32700],
      ['invalid_request', 400, -32600],
      ['header_mismatch', 400, -32020],
      ['verifier_unavailable', 503, -32603],
    ];
    for (const [code, status, rpc] of cases) {
      const r = toErrorResponse(new WardenError(code, 'm'));
      expect(r.status, code).toBe(status);
      expect(r.headers['www-authenticate'], code).toBeUndefined();
      expect(JSON.parse(r.body), code).toEqual({ jsonrpc: '2.0', id: null, error: { code: rpc, message: 'm' } });
    }
  });
  it('hides unknown errors behind a generic 500', () => {
    const r = toErrorResponse(new Error('db password is hunter2'));
    expect(r.status).toBe(500);
    expect(r.body).not.toContain('hunter2');
  });
  it('sets Retry-After when the error says when to retry', () => {
    expect(toErrorResponse(new WardenError('verifier_unavailable', 'x', { retryAfterSeconds: 1.2 })).headers['retry-after']).toBe('2');
  });

  describe('Security', () => {
    it('cannot be made to split or forge a header: CR/LF and quotes in challenge values', () => {
      const r = toErrorResponse(new WardenError('credential_invalid', 'bad "token"\r\nSet-Cookie: x=1'), {
        realm: 'r"ealm\r\n',
        resourceMetadataUrl: 'https://a.example/"x"\nEvil: 1',
      });
      const challenge = r.headers['www-authenticate'] ?? '';
      expect(challenge).not.toMatch(/[\r\n]/);
      expect(challenge).toBe(
        'Bearer realm="r\\"ealm", error="invalid_token", error_description="bad \\"token\\"Set-Cookie: x=1", resource_metadata="https://a.example/\\"x\\"Evil: 1"',
      );
    });
    it('quotes only visible ASCII', () => {
      expect(quoteAuthParam('a\u0000b\u00e9c\\')).toBe('"abc\\\\"');
    });
  });
});
