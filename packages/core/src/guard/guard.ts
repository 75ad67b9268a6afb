import { WardenError } from '../errors.js';
import type { RequestView } from '../http.js';

/**
 * MCP revisions whose `MCP-Protocol-Version` header is accepted by default: the three current
 * revisions (2025-06-18, 2025-11-25, 2026-07-28) and the older ones the official SDKs still speak.
 */
export const DEFAULT_PROTOCOL_VERSIONS: readonly string[] = [
  '2026-07-28',
  '2025-11-25',
  '2025-06-18',
  '2025-03-26',
  '2024-11-05',
];

/** Default body limit: 1 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** Options of the guard stage, which runs before any body parsing or credential lookup. */
export interface GuardOptions {
  /**
   * The address the server binds. A loopback bind (`127.0.0.1`, `localhost`, `::1`, the default)
   * turns on DNS-rebinding protection: the `Host` header must name a loopback host, and browser
   * `Origin`s on loopback hosts are accepted (any port).
   * @default '127.0.0.1'
   */
  readonly host?: string;
  /** Host names (no port) accepted in the `Host` header. Setting it enables the check on any bind. */
  readonly allowedHosts?: readonly string[];
  /**
   * Browser origins (`scheme://host[:port]`) allowed to call. A request whose `Origin` is present and
   * not allowed is refused with 403 (MCP transports, "Security Warning"). Requests without `Origin`
   * (non-browser clients) pass.
   * @default [] (plus loopback origins on a loopback bind)
   */
  readonly allowedOrigins?: readonly string[];
  /**
   * Largest request body accepted, in bytes.
   * @default 1048576 (1 MiB)
   */
  readonly maxBodyBytes?: number;
  /**
   * Accepted values of the `MCP-Protocol-Version` header; another value is refused with 400.
   * @default DEFAULT_PROTOCOL_VERSIONS
   */
  readonly supportedProtocolVersions?: readonly string[];
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** Whether a bind address or host name is loopback-class. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return LOOPBACK_HOSTS.has(h) || /^127(?:\.\d{1,3}){3}$/.test(h) || h.endsWith('.localhost');
}

/** Extracts the host name of a `Host` header value (`name[:port]` or `[v6]:port`), lower-cased. */
export function hostNameOf(hostHeader: string): string | undefined {
  const value = hostHeader.trim().toLowerCase();
  if (value === '' || /[\s/?#@\\]/.test(value)) return undefined;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end < 0) return undefined;
    const rest = value.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
    return value.slice(0, end + 1);
  }
  const colon = value.indexOf(':');
  if (colon < 0) return value;
  if (!/^\d{1,5}$/.test(value.slice(colon + 1))) return undefined;
  return value.slice(0, colon);
}

/** Normalises an origin (`scheme://host[:port]`): lower case, default ports dropped. */
export function normaliseOrigin(origin: string): string | undefined {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '')) return undefined;
  if (url.search !== '' || url.hash !== '') return undefined;
  return url.origin;
}

const MEDIA_TYPE_JSON = /^application\/json\s*(?:;|$)/i;

/** How many accepted `Host`, `Origin` and `Content-Type` values a guard remembers (each). */
const MEMO_LIMIT = 64;

function remember(accepted: Set<string>, value: string): void {
  if (accepted.size < MEMO_LIMIT) accepted.add(value);
}

function hostNotAllowed(): WardenError {
  return new WardenError('host_not_allowed', 'Forbidden: the Host header names a host this server does not serve');
}

function originNotAllowed(): WardenError {
  return new WardenError('origin_not_allowed', 'Forbidden: this Origin is not allowed');
}

function unsupportedMediaType(): WardenError {
  return new WardenError('unsupported_media_type', 'Unsupported Media Type: the body must be application/json');
}

/** Whether the server binds a loopback address (then loopback `Host`s and `Origin`s are accepted). */
function isLocalBind(options: Pick<GuardOptions, 'host'>): boolean {
  const bindHost = options.host ?? '127.0.0.1';
  return isLoopbackHost(bindHost) || bindHost === '::1';
}

/**
 * The guard's `Origin` rule, for whoever else must apply it (the gateway's CORS): whether a browser
 * at `origin` may call, that is, the origin is listed in `allowedOrigins` or is on a loopback host
 * behind a loopback bind. Each distinct value is decided once (up to a bound).
 * @throws TypeError naming an `allowedOrigins` entry that is not `scheme://host[:port]`.
 */
export function createOriginCheck(options: Pick<GuardOptions, 'host' | 'allowedOrigins'>): (origin: string) => boolean {
  const localBind = isLocalBind(options);
  const allowedOrigins = new Set<string>();
  for (const origin of options.allowedOrigins ?? []) {
    const normalised = normaliseOrigin(origin);
    if (normalised === undefined) {
      throw new TypeError(`guard.allowedOrigins: "${origin}" is not an origin of the form scheme://host[:port]`);
    }
    allowedOrigins.add(normalised);
  }
  const accepted = new Set<string>();
  return (origin) => {
    if (accepted.has(origin)) return true;
    const normalised = normaliseOrigin(origin);
    const ok = normalised !== undefined && (allowedOrigins.has(normalised) || (localBind && isLoopbackHost(new URL(normalised).hostname)));
    if (ok) remember(accepted, origin);
    return ok;
  };
}

/**
 * Creates the guard: Host allow-list, Origin validation, `MCP-Protocol-Version`, content type and
 * declared body size. It reads headers only. Throws a {@link WardenError} to refuse.
 */
export function createGuard(options: GuardOptions = {}): (request: RequestView) => void {
  const localBind = isLocalBind(options);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes <= 0) {
    throw new TypeError(`guard.maxBodyBytes must be a positive integer (bytes), got ${String(options.maxBodyBytes)}`);
  }
  const allowedHosts =
    options.allowedHosts !== undefined
      ? new Set(options.allowedHosts.map((h) => h.toLowerCase()))
      : localBind
        ? LOOPBACK_HOSTS
        : undefined;
  const originAllowed = createOriginCheck(options);
  const versions = new Set(options.supportedProtocolVersions ?? DEFAULT_PROTOCOL_VERSIONS);
  // Header values already found acceptable. These checks depend on the value and this guard's options
  // only, and clients send the same few values on every request, so each distinct value is parsed
  // once (at most MEMO_LIMIT of them; past that, values are checked every time).
  const acceptedHosts = new Set<string>();
  const acceptedContentTypes = new Set<string>();

  return function guard(request: RequestView): void {
    if (allowedHosts !== undefined) {
      const hostHeader = request.header('host');
      if (hostHeader === undefined || request.headerCount('host') > 1) throw hostNotAllowed();
      if (!acceptedHosts.has(hostHeader)) {
        const name = hostNameOf(hostHeader);
        if (name === undefined || !(allowedHosts.has(name) || (localBind && isLoopbackHost(name)))) throw hostNotAllowed();
        remember(acceptedHosts, hostHeader);
      }
    }

    const origin = request.header('origin');
    if (origin !== undefined) {
      if (request.headerCount('origin') > 1 || !originAllowed(origin)) throw originNotAllowed();
    }

    const version = request.header('mcp-protocol-version');
    if (version !== undefined && (request.headerCount('mcp-protocol-version') > 1 || !versions.has(version.trim()))) {
      throw new WardenError(
        'unsupported_protocol_version',
        `Bad Request: unsupported MCP-Protocol-Version (supported: ${[...versions].join(', ')})`,
        { data: { supported: [...versions] } },
      );
    }

    if (request.method === 'POST') {
      const contentType = request.header('content-type');
      if (contentType === undefined || request.headerCount('content-type') > 1) throw unsupportedMediaType();
      if (!acceptedContentTypes.has(contentType)) {
        if (!MEDIA_TYPE_JSON.test(contentType)) throw unsupportedMediaType();
        remember(acceptedContentTypes, contentType);
      }
      const length = request.header('content-length');
      if (length !== undefined && (!/^\d+$/.test(length.trim()) || Number(length) > maxBodyBytes)) {
        throw new WardenError('body_too_large', `Payload Too Large: the body exceeds ${maxBodyBytes} bytes`);
      }
    }
  };
}
