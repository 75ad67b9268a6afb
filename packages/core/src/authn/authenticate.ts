import { WardenError } from '../errors.js';
import type { Credential, CredentialVerifier, Principal, VerificationResult } from '../types.js';

/** The result of trying the verifiers on one credential. */
export type AuthenticationOutcome =
  | { readonly ok: true; readonly principal: Principal; readonly verifier: string }
  | { readonly ok: false; readonly error: WardenError; readonly verifier?: string; readonly credentialRef?: string };

/**
 * Tries the verifiers in order and returns the first verdict. A verifier that throws makes the
 * request fail closed (503), never pass. A credential no verifier recognises is `credential_invalid`.
 */
export async function authenticate(
  credential: Credential,
  verifiers: readonly CredentialVerifier[],
): Promise<AuthenticationOutcome> {
  return authenticateFrom(credential, verifiers, 0);
}

/**
 * {@link authenticate} without a promise while the verifiers answer synchronously (static tokens,
 * cached keys): the pipeline awaits only what is really asynchronous. Same verdicts, same order.
 */
export function authenticateFrom(
  credential: Credential,
  verifiers: readonly CredentialVerifier[],
  start: number,
): AuthenticationOutcome | Promise<AuthenticationOutcome> {
  for (let i = start; i < verifiers.length; i++) {
    const verifier = verifiers[i] as CredentialVerifier;
    let result: VerificationResult | undefined | Promise<VerificationResult | undefined>;
    let pending: boolean;
    try {
      result = verifier.verify(credential);
      // Inside the try: reading `then` of a hostile result may throw too.
      pending = isThenable(result);
    } catch (cause) {
      return unavailable(verifier, cause);
    }
    if (pending) {
      return Promise.resolve(result).then(
        (settled) => (settled === undefined ? authenticateFrom(credential, verifiers, i + 1) : verdict(verifier, settled)),
        (cause: unknown) => unavailable(verifier, cause),
      );
    }
    if (result !== undefined) return verdict(verifier, result as VerificationResult);
  }
  return { ok: false, error: new WardenError('credential_invalid', 'The credential is not valid', { data: { reason: 'unknown' } }) };
}

function isThenable(value: unknown): value is PromiseLike<VerificationResult | undefined> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

function verdict(verifier: CredentialVerifier, result: VerificationResult): AuthenticationOutcome {
  if (result.ok) return { ok: true, principal: result.principal, verifier: verifier.name };
  const error = new WardenError('credential_invalid', result.description, { data: { reason: result.reason } });
  return result.credentialRef === undefined
    ? { ok: false, verifier: verifier.name, error }
    : { ok: false, verifier: verifier.name, credentialRef: result.credentialRef, error };
}

function unavailable(verifier: CredentialVerifier, cause: unknown): AuthenticationOutcome {
  return {
    ok: false,
    verifier: verifier.name,
    error: new WardenError('verifier_unavailable', 'Service Unavailable: the credential could not be checked', { cause, retryAfterSeconds: 1 }),
  };
}
