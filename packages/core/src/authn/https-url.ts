/**
 * Issuer, key set and introspection URLs must be https: a token verified with keys fetched over
 * plain http is only as good as the network path. Loopback addresses are the exception (tests,
 * an identity provider on the same host).
 */
export function requireHttpsUrl(value: string, where: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`${where}: "${value}" is not a URL`);
  }
  const loopback = url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new TypeError(`${where}: "${value}" must be https (plain http is accepted for loopback addresses only)`);
  }
  return url;
}
