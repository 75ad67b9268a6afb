import { WardenError } from '../src/errors.js';
import type { RequestView } from '../src/http.js';
import type { Principal } from '../src/types.js';

/** A RequestView over a plain header list; repeated names count as repeated headers. */
export function view(init: { method?: string; url?: string; headers?: [string, string][] } = {}): RequestView {
  const headers = init.headers ?? [];
  return {
    method: init.method ?? 'POST',
    url: init.url ?? '/mcp',
    header: (name) => {
      const values = headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
      return values.length === 0 ? undefined : values.join(', ');
    },
    headerCount: (name) => headers.filter(([k]) => k.toLowerCase() === name).length,
    remoteAddress: '127.0.0.1',
  };
}

export function principal(roles: string[], id = 'p'): Principal {
  return { id, kind: 'static-token', subject: id, roles, scopes: [], claims: {} };
}

/** The WardenError code a call throws, or undefined when it does not throw. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    return error instanceof WardenError ? error.code : 'not-a-warden-error';
  }
}
