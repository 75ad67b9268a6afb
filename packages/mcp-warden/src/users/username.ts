/**
 * Usernames: what is accepted, how a name is stored, and how two names are compared.
 *
 * A name is stored NFC-normalised, as given. Names are compared by a folded copy: NFKC (compatibility
 * forms such as fullwidth `ａｌｉｃｅ` or the ligature `ﬁ` become their plain letters) and full case
 * folding (upper-casing then lower-casing, so `ß` matches `SS` and `ς` matches `Σ`), so `Alice`,
 * `ALICE` and `ａｌｉｃｅ` are one account. Letters of different scripts that merely look alike (Cyrillic
 * `а`, Latin `a`) stay different names: folding does not detect confusables.
 */

/** The longest name accepted, in code points after NFC. */
export const MAX_USERNAME_LENGTH = 64;

// \p{C}: control, format (zero-width and bidi controls), surrogate, private-use and unassigned code
// points; \p{Zl}\p{Zp}: line and paragraph separators. None of them belongs in a name people read.
const FORBIDDEN = /[\p{C}\p{Zl}\p{Zp}]/u;
const EDGE_SPACE = /^\s|\s$/u;

/** Why `username` (already NFC-normalised) is refused, or undefined when it is acceptable. */
export function usernameProblem(username: string): string | undefined {
  if (username === '') return 'a username cannot be empty';
  if ([...username].length > MAX_USERNAME_LENGTH) return `a username has at most ${MAX_USERNAME_LENGTH} characters`;
  if (EDGE_SPACE.test(username)) return 'a username cannot begin or end with a space';
  if (FORBIDDEN.test(username)) return 'a username cannot contain control, format or separator characters';
  return undefined;
}

/** The name as stored: NFC-normalised. */
export function normalizeUsername(username: string): string {
  return username.normalize('NFC');
}

/** The comparison key of a (normalised) name: NFKC and full case folding. */
export function foldUsername(username: string): string {
  return username.normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKC');
}

/**
 * A name made acceptable, for names that come from an identity provider rather than from a person at
 * the CLI: forbidden characters removed, spaces trimmed, cut to the maximum length. May be empty.
 */
export function sanitizeUsername(username: string, maxLength = MAX_USERNAME_LENGTH): string {
  const cleaned = normalizeUsername(username).replace(new RegExp(FORBIDDEN.source, 'gu'), '').trim();
  return [...cleaned].slice(0, maxLength).join('').trim();
}
