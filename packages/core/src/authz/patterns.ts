/**
 * Glob patterns for tool names, prompt names and resource URIs, and the checks that keep names and
 * URIs from slipping past them (look-alike characters, `..` segments, percent-encoding tricks).
 *
 * Pattern syntax: `*` matches any run of characters except `/`, `**` matches anything, `?` matches one
 * character except `/`; everything else is literal. Patterns are anchored at both ends.
 */

/** A compiled glob. */
export interface CompiledPattern {
  readonly source: string;
  /** Matches the exact target: used for allow rules. */
  readonly exact: RegExp;
  /** Matches the folded target: deny rules also test this, so a look-alike cannot evade them. */
  readonly folded: RegExp;
}

function globToRegExp(glob: string): RegExp {
  let out = '^';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i] as string;
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        out += '.*';
        i++;
      } else out += '[^/]*';
    } else if (ch === '?') out += '[^/]';
    else out += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`${out}$`, 'su');
}

/** Compiles a glob; throws a TypeError naming `where` for an empty or control-character pattern. */
export function compilePattern(glob: string, where: string): CompiledPattern {
  if (typeof glob !== 'string' || glob === '' || hasUnsafeCharacters(glob)) {
    // JSON-quoted: a control character shows as an escape, not as itself in a terminal or a log.
    throw new TypeError(`${where}: ${JSON.stringify(String(glob))} is not a valid pattern (empty, or contains control characters)`);
  }
  return { source: glob, exact: globToRegExp(glob), folded: globToRegExp(foldForComparison(glob)) };
}

/** Control (Cc), format (Cf: zero-width, bidi overrides), separators other than space, and unpaired surrogates. */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

/** Whether a name or URI carries characters that render invisibly or reorder text. */
export function hasUnsafeCharacters(value: string): boolean {
  return UNSAFE.test(value);
}

/**
 * Latin look-alikes from Cyrillic and Greek that NFKC leaves alone (a small skeleton in the spirit of
 * Unicode TR39 "confusables"): `dеlete` with a Cyrillic `е` folds to `delete`.
 */
const CONFUSABLES: Record<string, string> = {
  а: 'a', в: 'b', е: 'e', ё: 'e', к: 'k', м: 'm', н: 'h', о: 'o', р: 'p', с: 'c', т: 't', у: 'y', х: 'x',
  і: 'i', ї: 'i', ј: 'j', ѕ: 's', ԁ: 'd', ԛ: 'q', ԝ: 'w', ɡ: 'g', ʟ: 'l',
  α: 'a', β: 'b', ε: 'e', η: 'n', ι: 'i', κ: 'k', ν: 'v', ο: 'o', ρ: 'p', τ: 't', υ: 'u', χ: 'x', ω: 'w', ϲ: 'c',
  ı: 'i', ł: 'l',
};

/** NFKC, lower case, and look-alikes folded to Latin: the form deny rules compare against. */
export function foldForComparison(value: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(value)) return value.toLowerCase();
  let out = '';
  for (const ch of value.normalize('NFKC').toLowerCase()) out += CONFUSABLES[ch] ?? ch;
  return out.normalize('NFKC');
}

/** Why a resource URI is refused before any pattern sees it, or `undefined` when it is safe to match. */
export function unsafeUriReason(uri: string): string | undefined {
  if (uri === '') return 'the URI is empty';
  if (hasUnsafeCharacters(uri)) return 'the URI contains control or invisible characters';
  if (uri.includes('\\')) return 'the URI contains a backslash';
  for (let i = uri.indexOf('%'); i >= 0; i = uri.indexOf('%', i + 1)) {
    const hex = uri.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return 'the URI contains a malformed percent-encoding';
    const code = parseInt(hex, 16);
    // An encoded '.', '/', '\' or '%' (and any control) can turn into a traversal after decoding.
    if (code === 0x2e || code === 0x2f || code === 0x5c || code === 0x25 || code < 0x20 || code === 0x7f) {
      return 'the URI percent-encodes a path character (".", "/", "\\" or "%")';
    }
  }
  const end = uri.search(/[?#]/);
  // Without its scheme: `file:..` and `file:./x` are dot segments too (a URL parser resolves them).
  const path = (end < 0 ? uri : uri.slice(0, end)).replace(/^[A-Za-z][A-Za-z0-9+.-]*:/, '');
  for (const segment of path.split('/')) {
    if (segment === '.' || segment === '..') return 'the URI contains a "." or ".." path segment';
  }
  return undefined;
}

/** scheme, `//authority`, path, and what follows (`?query#fragment`) of a URI. */
const URI_PARTS = /^([A-Za-z][A-Za-z0-9+.-]*:)(\/\/[^/?#]*)?([^?#]*)(.*)$/s;

/** The schemes WHATWG URL parsing treats as special (host normalised, `file:` paths rooted). */
const SPECIAL_SCHEMES = new Set(['file:', 'http:', 'https:', 'ws:', 'wss:', 'ftp:']);

/**
 * Other spellings a server may read a URI as, for deny rules to test as well as the URI as sent.
 * Only ever widens what a deny rule catches: allow rules still match the URI as sent. (Encoded `.`,
 * `/`, `\` and `%` never get here: {@link unsafeUriReason} refuses them.)
 *
 * - As written: percent-encodings decoded (an encoded unreserved character is the same URI, RFC 3986
 *   §6.2.2.2, and servers that map URIs to files decode the rest too), scheme and host in lower case
 *   (§6.2.2.1), `file://localhost/` as `file:///` (RFC 8089 §2), runs of `/` in the path as one
 *   (what a file system makes of `a//b`).
 * - As a WHATWG URL parser reads it (Node's `new URL`, and so `fileURLToPath`), for the special
 *   schemes: the host decoded and normalised (`localh%6Fst` is `localhost`, which a `file:` URL
 *   drops), `file:a` and `file:/a` rooted as `file:///a`, and for `file:` the query and fragment
 *   dropped (a file path has none), then decoded and collapsed as above.
 */
export function uriVariants(uri: string): string[] {
  const variants: string[] = [];
  const parts = URI_PARTS.exec(uri);
  if (parts !== null) {
    const [, scheme = '', rawAuthority = '', rawPath = '', rest = ''] = parts;
    const lowerScheme = scheme.toLowerCase();
    let authority = rawAuthority.toLowerCase();
    if (lowerScheme === 'file:' && authority === '//localhost') authority = '//';
    const variant = `${lowerScheme}${authority}${collapseSlashes(decodePercent(rawPath))}${decodePercent(rest)}`;
    if (variant !== uri) variants.push(variant);
  }
  let url: URL | undefined;
  try {
    url = new URL(uri);
  } catch {
    url = undefined;
  }
  if (url !== undefined && SPECIAL_SCHEMES.has(url.protocol)) {
    const tail = url.protocol === 'file:' ? '' : decodePercent(url.search + url.hash);
    const parsed = `${url.protocol}//${url.host}${collapseSlashes(decodePercent(url.pathname))}${tail}`;
    if (parsed !== uri && !variants.includes(parsed)) variants.push(parsed);
  }
  return variants;
}

function collapseSlashes(path: string): string {
  return path.replace(/\/{2,}/g, '/');
}

/** `text` with its percent-encodings decoded as UTF-8; a run that is not valid UTF-8 stays as it is. */
function decodePercent(text: string): string {
  if (!text.includes('%')) return text;
  return text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

/** Why a tool or prompt name is refused before any pattern sees it, or `undefined`. */
export function unsafeNameReason(name: string): string | undefined {
  if (name === '') return 'the name is empty';
  if (name.length > 512) return 'the name is longer than 512 characters';
  if (hasUnsafeCharacters(name)) return 'the name contains control or invisible characters';
  return undefined;
}
