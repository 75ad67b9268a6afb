/** The one error type of user management, with a stable `code` per failure (the CLI maps codes to exit codes). */

/** Why a user operation was refused. Stable: callers branch on these, never on messages. */
export type UserErrorCode =
  /** Another account already has this name (compared folded: `Alice` and `alice` are one name). */
  | 'username_taken'
  /** The name is empty, too long, has leading or trailing spaces, or control or format characters. */
  | 'invalid_username'
  /** The password is shorter than 12 characters, longer than 1024 bytes, or equal to the username. */
  | 'weak_password'
  /** No account has this name. */
  | 'not_found'
  /** The account is disabled (a federated login for it is refused). */
  | 'disabled';

/**
 * A refused user operation. The message says what to do and may name the account; it never holds a
 * password or a password hash.
 */
export class UserAccountError extends Error {
  override readonly name = 'UserAccountError';

  constructor(
    readonly code: UserErrorCode,
    message: string,
  ) {
    super(message);
  }
}
