import { describe, expect, it } from 'vitest';
import { authenticate, authenticateFrom } from '../../src/authn/authenticate.js';
import { sha256Hex, staticTokens } from '../../src/authn/static-tokens.js';
import type { CredentialVerifier } from '../../src/types.js';

describe('staticTokens', () => {
  const verifier = staticTokens(
    [
      { id: 'alice', token: 'alice-secret', roles: ['admin'] },
      { id: 'bob', tokenEnv: 'BOB_TOKEN', roles: ['reader'], scopes: ['mcp:read'] },
      { id: 'carol', sha256: sha256Hex('carol-secret'), roles: [] },
    ],
    { env: { BOB_TOKEN: 'bob-secret' } },
  );

  it('maps each secret to its principal, whatever the source of the secret', () => {
    const check = (value: string) => verifier.verify({ source: 'bearer', value });
    expect(check('alice-secret')).toMatchObject({ ok: true, principal: { id: 'alice', kind: 'static-token', roles: ['admin'] } });
    expect(check('bob-secret')).toMatchObject({ ok: true, principal: { id: 'bob', roles: ['reader'], scopes: ['mcp:read'] } });
    expect(check('carol-secret')).toMatchObject({ ok: true, principal: { id: 'carol' } });
  });

  it('refuses an unknown secret with a hash reference and never the secret', () => {
    const result = verifier.verify({ source: 'bearer', value: 'guess' });
    expect(result).toMatchObject({ ok: false, reason: 'unknown', credentialRef: `sha256:${sha256Hex('guess').slice(0, 12)}` });
    expect(JSON.stringify(result)).not.toContain('guess');
  });

  it('validates entries at creation, naming the entry', () => {
    expect(() => staticTokens([{ id: 'x', roles: [] }])).toThrow(/staticTokens\[0\] \(x\) needs exactly one of/);
    expect(() => staticTokens([{ id: 'x', tokenEnv: 'MISSING_VAR', roles: [] }], { env: {} })).toThrow(/MISSING_VAR is not set/);
    expect(() =>
      staticTokens([
        { id: 'a', token: 't', roles: [] },
        { id: 'b', token: 't', roles: [] },
      ]),
    ).toThrow(/same secret/);
    expect(() =>
      staticTokens([
        { id: 'a', token: 't1', roles: [] },
        { id: 'a', token: 't2', roles: [] },
      ]),
    ).toThrow(/used twice/);
    expect(() => staticTokens([{ id: 'a', sha256: 'zz', roles: [] }])).toThrow(/64 hex/);
  });
});

describe('authenticate', () => {
  const credential = { source: 'bearer' as const, value: 'x' };
  it('takes the first verifier that recognises the credential', async () => {
    const skip: CredentialVerifier = { name: 'skip', verify: () => undefined };
    const outcome = await authenticate(credential, [skip, staticTokens([{ id: 'p', token: 'x', roles: [] }])]);
    expect(outcome).toMatchObject({ ok: true, verifier: 'static-tokens', principal: { id: 'p' } });
  });
  it('fails closed with 503 when a verifier throws (store down)', async () => {
    const down: CredentialVerifier = {
      name: 'down',
      verify: () => Promise.reject(new Error('connection refused')),
    };
    const outcome = await authenticate(credential, [down, staticTokens([{ id: 'p', token: 'x', roles: [] }])]);
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expect(outcome.error.code).toBe('verifier_unavailable');
  });
  it('refuses a credential that no verifier recognises', async () => {
    const outcome = await authenticate(credential, [{ name: 'none', verify: () => undefined }]);
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expect(outcome.error.code).toBe('credential_invalid');
  });
  it('fails closed when a verifier throws synchronously', async () => {
    const broken: CredentialVerifier = {
      name: 'broken',
      verify: () => {
        throw new Error('bug');
      },
    };
    const outcome = await authenticate(credential, [broken, staticTokens([{ id: 'p', token: 'x', roles: [] }])]);
    expect(outcome).toMatchObject({ ok: false, verifier: 'broken', error: { code: 'verifier_unavailable' } });
  });
});

describe('authenticateFrom (the pipeline\'s path)', () => {
  const credential = { source: 'bearer' as const, value: 'x' };
  const tokens = staticTokens([{ id: 'p', token: 'x', roles: [] }]);

  it('answers without a promise while every verifier it asks answers synchronously', () => {
    const outcome = authenticateFrom(credential, [{ name: 'skip', verify: () => undefined }, tokens], 0);
    expect(outcome).not.toBeInstanceOf(Promise);
    expect(outcome).toMatchObject({ ok: true, verifier: 'static-tokens', principal: { id: 'p' } });
    const refused = authenticateFrom({ source: 'bearer', value: 'nope' }, [tokens], 0);
    expect(refused).not.toBeInstanceOf(Promise);
    expect(refused).toMatchObject({ ok: false, verifier: 'static-tokens', error: { code: 'credential_invalid' } });
  });

  it('goes on to the next verifier, in order, after an asynchronous one passes', async () => {
    const asked: string[] = [];
    const later: CredentialVerifier = {
      name: 'later',
      verify: async () => {
        asked.push('later');
        return undefined;
      },
    };
    const first: CredentialVerifier = {
      name: 'first',
      verify: () => {
        asked.push('first');
        return undefined;
      },
    };
    const outcome = authenticateFrom(credential, [first, later, tokens], 0);
    expect(outcome).toBeInstanceOf(Promise);
    await expect(outcome).resolves.toMatchObject({ ok: true, verifier: 'static-tokens' });
    expect(asked).toEqual(['first', 'later']);
  });

  it('awaits a thenable that is not a native promise, and fails closed when it rejects', async () => {
    const thenable = (settle: 'ok' | 'fail'): CredentialVerifier => ({
      name: `thenable-${settle}`,
      verify: () =>
        ({
          then(resolve: (v: unknown) => void, reject: (e: unknown) => void) {
            if (settle === 'ok') resolve({ ok: true, principal: { id: 'q', kind: 't', subject: 'q', roles: [], scopes: [], claims: {} } });
            else reject(new Error('down'));
          },
        }) as unknown as Promise<undefined>,
    });
    await expect(authenticateFrom(credential, [thenable('ok')], 0)).resolves.toMatchObject({ ok: true, principal: { id: 'q' } });
    await expect(authenticateFrom(credential, [thenable('fail'), tokens], 0)).resolves.toMatchObject({
      ok: false,
      error: { code: 'verifier_unavailable' },
    });
  });
});
