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

/** `text` cut at the given points (each taken modulo its length + 1), in order, as strings. */
export function cutPieces(text: string, cuts: readonly number[]): string[] {
  const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  const chunks: string[] = [];
  let last = 0;
  for (const p of points) {
    chunks.push(text.slice(last, p));
    last = p;
  }
  chunks.push(text.slice(last));
  return chunks;
}
