/**
 * OAuth 2.0 Protected Resource Metadata (RFC 9728) for an MCP endpoint: the document clients read
 * to find the authorization server, and where it lives (MCP authorization, "Authorization Server
 * Location" and "Protected Resource Metadata Discovery Requirements").
 */

/** What the metadata document says about one protected MCP endpoint. */
export interface ResourceMetadataOptions {
  /** The endpoint's canonical URI (MCP "Canonical Server URI"): no fragment, no trailing slash. */
  readonly resource: string;
  /** Issuer identifiers of the authorization servers whose tokens are accepted (at least one). */
  readonly authorizationServers: readonly string[];
  /** Scopes a client may ask for; `offline_access` is left out (MCP authorization 2026-07-28, "Refresh Tokens"). */
  readonly scopesSupported?: readonly string[];
  /** A human-readable name. */
  readonly resourceName?: string;
  /** A page about the resource. */
  readonly resourceDocumentation?: string;
}

/**
 * The canonical form of an MCP endpoint URI: lower-case scheme and host (the URL parser does that),
 * no fragment, no query, no trailing slash. Throws a TypeError for what is not an http(s) URL.
 */
export function canonicalResourceUri(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`"${value}" is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`"${value}" is not an http(s) URL`);
  url.hash = '';
  url.search = '';
  const text = url.toString();
  return text.endsWith('/') ? text.slice(0, -1) : text;
}

/** The path-inserted well-known URL of a resource's metadata (RFC 9728 §3.1): `/.well-known/oauth-protected-resource` + the resource's path. */
export function resourceMetadataUrl(resource: string): string {
  const url = new URL(canonicalResourceUri(resource));
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.origin}/.well-known/oauth-protected-resource${path}`;
}

/** The RFC 9728 §2 document. Tokens are accepted only in the Authorization header (`bearer_methods_supported`). */
export function resourceMetadata(options: ResourceMetadataOptions): Record<string, unknown> {
  if (options.authorizationServers.length === 0) throw new TypeError('protected resource metadata needs at least one authorization server');
  const scopes = (options.scopesSupported ?? []).filter((s) => s !== 'offline_access');
  return {
    resource: canonicalResourceUri(options.resource),
    authorization_servers: [...options.authorizationServers],
    bearer_methods_supported: ['header'],
    ...(scopes.length === 0 ? {} : { scopes_supported: scopes }),
    ...(options.resourceName === undefined ? {} : { resource_name: options.resourceName }),
    ...(options.resourceDocumentation === undefined ? {} : { resource_documentation: options.resourceDocumentation }),
  };
}
