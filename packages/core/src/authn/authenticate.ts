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
  for (const verifier of verifiers) {
    let result: VerificationResult | undefined;
    try {
      result = await verifier.verify(credential);
    } catch (cause) {
      return {
        ok: false,
        verifier: verifier.name,
        error: new WardenError('verifier_unavailable', 'Service Unavailable: the credential could not be checked', {
          cause,
          retryAfterSeconds: 1,
        }),
      };
    }
    if (result === undefined) continue;
    if (result.ok) return { ok: true, principal: result.principal, verifier: verifier.name };
    return {
      ok: false,
      verifier: verifier.name,
      ...(result.credentialRef === undefined ? {} : { credentialRef: result.credentialRef }),
      error: new WardenError('credential_invalid', result.description, { data: { reason: result.reason } }),
    };
  }
  return { ok: false, error: new WardenError('credential_invalid', 'The credential is not valid', { data: { reason: 'unknown' } }) };
}
