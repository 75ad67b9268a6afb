/**
 * The authorization server's HTML pages: sign-in, consent and errors. Server-rendered, no script.
 * Accessibility (WCAG 2.2 AA): `lang`, one `h1`, a `<label>` for every input, focus always visible,
 * text contrast ≥ 4.5:1, errors in `role="alert"`, every control reachable by keyboard in reading
 * order. Security: a strict CSP (no script at all, the stylesheet allowed by nonce), no framing, no
 * referrer, no caching; forms carry a CSRF token bound to the interaction (checked by the caller).
 */
import { randomBytes } from 'node:crypto';

/** Escapes text for HTML element content and double-quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A fresh CSP nonce. */
export function newNonce(): string {
  return randomBytes(18).toString('base64url');
}

/**
 * Security headers for a page. `formActions` are the origins a form on it may submit to or be
 * redirected to after submitting (browsers apply `form-action` to the redirect chain, which ends at
 * the client's redirect URI).
 */
export function pageHeaders(nonce: string, formActions: readonly string[] = []): Record<string, string> {
  const csp = [
    "default-src 'none'",
    `style-src 'nonce-${nonce}'`,
    `form-action 'self'${formActions.map((o) => ` ${o}`).join('')}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "img-src 'self'",
  ].join('; ');
  return {
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': csp,
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'cross-origin-opener-policy': 'same-origin',
  };
}

// Colours: text #1b1b1f on white (16.8:1), muted #4a4a55 (8.9:1), primary button white on #0b57d0
// (6.3:1), alert #8a1c1c on #fdecec (7.4:1), warning #5c3b00 on #fff4d6 (9.1:1). Focus: 3px outline.
const STYLE = `
*,*::before,*::after{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1f;background:#f4f5f7}
main{max-width:28rem;margin:3rem auto;padding:2rem;background:#fff;border:1px solid #c9ccd3;border-radius:8px}
h1{font-size:1.5rem;margin:0 0 1rem}
p,ul{margin:0 0 1rem}
.muted{color:#4a4a55}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input{width:100%;padding:.6rem;font:inherit;color:#1b1b1f;border:1px solid #6b6e78;border-radius:4px}
button,.button{display:inline-block;margin-top:1.25rem;padding:.6rem 1.2rem;font:inherit;font-weight:600;border-radius:4px;border:2px solid #0b57d0;background:#0b57d0;color:#fff;cursor:pointer;text-decoration:none}
button.secondary{background:#fff;color:#0b3d91}
.actions{display:flex;gap:.75rem;flex-wrap:wrap}
:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}
input:focus-visible{outline-offset:0}
[role=alert]{padding:.75rem;border-radius:4px;background:#fdecec;color:#8a1c1c;border:1px solid #8a1c1c}
.warning{padding:.75rem;border-radius:4px;background:#fff4d6;color:#5c3b00;border:1px solid #5c3b00}
code{font-size:.95em}
dt{font-weight:600}
dd{margin:0 0 .75rem}
`;

function layout(nonce: string, title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)} · mcp-warden</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

/** Who is asking, as the pages show it. */
export interface ClientView {
  /** The client's name (its client_id when it has none). */
  readonly name: string;
  /** The host of the redirect URI: where the browser goes next (MCP authorization, client ID metadata documents). */
  readonly redirectHost: string;
}

/** The sign-in page. Field names and texts are a contract with the browser tests: keep them. */
export function renderLoginPage(options: {
  readonly nonce: string;
  readonly action: string;
  readonly csrf: string;
  readonly client: ClientView;
  readonly error?: string;
  readonly username?: string;
  readonly federation?: { readonly name: string; readonly href: string };
}): string {
  const { client } = options;
  const error = options.error === undefined ? '' : `<p role="alert" id="login-error">${escapeHtml(options.error)}</p>\n`;
  const described = options.error === undefined ? '' : ' aria-describedby="login-error"';
  const federation =
    options.federation === undefined
      ? ''
      : `<p class="muted">or</p>\n<p><a class="button" href="${escapeHtml(options.federation.href)}">Log in with ${escapeHtml(options.federation.name)}</a></p>\n`;
  return layout(
    options.nonce,
    'Sign in',
    `<h1>Sign in</h1>
<p><strong>${escapeHtml(client.name)}</strong> wants to use MCP servers on your behalf. It will return to <strong>${escapeHtml(client.redirectHost)}</strong>.</p>
${error}<form method="post" action="${escapeHtml(options.action)}" autocomplete="on">
<input type="hidden" name="csrf" value="${escapeHtml(options.csrf)}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required value="${escapeHtml(options.username ?? '')}"${described}${options.username === undefined ? ' autofocus' : ''}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required${described}${options.username === undefined ? '' : ' autofocus'}>
<div class="actions"><button type="submit">Sign in</button></div>
</form>
${federation}`,
  );
}

/** One requested scope, as the consent page lists it. */
export interface ScopeView {
  readonly scope: string;
  readonly description: string;
}

/** The consent page. Button names, values and texts are a contract with the browser tests: keep them. */
export function renderConsentPage(options: {
  readonly nonce: string;
  readonly action: string;
  readonly csrf: string;
  readonly client: ClientView;
  readonly username: string;
  readonly scopes: readonly ScopeView[];
  /** The MCP servers (resource URIs) the access is for. */
  readonly resources: readonly string[];
  readonly warnings: readonly string[];
}): string {
  const { client } = options;
  const warnings = options.warnings.map((w) => `<p class="warning">${escapeHtml(w)}</p>\n`).join('');
  const scopes =
    options.scopes.length === 0
      ? '<p>No specific permissions: only to know who you are.</p>\n'
      : `<dl>\n${options.scopes.map((s) => `<dt><code>${escapeHtml(s.scope)}</code></dt><dd>${escapeHtml(s.description)}</dd>`).join('\n')}\n</dl>\n`;
  const resources =
    options.resources.length === 0 ? '' : `<p>For: ${options.resources.map((r) => `<code>${escapeHtml(r)}</code>`).join(', ')}</p>\n`;
  return layout(
    options.nonce,
    'Allow access?',
    `<h1>Allow access?</h1>
<p><strong>${escapeHtml(client.name)}</strong> asks to act for <strong>${escapeHtml(options.username)}</strong>. Afterwards your browser goes to <strong>${escapeHtml(client.redirectHost)}</strong>.</p>
${warnings}<h2>It asks for</h2>
${scopes}${resources}<form method="post" action="${escapeHtml(options.action)}">
<input type="hidden" name="csrf" value="${escapeHtml(options.csrf)}">
<div class="actions"><button name="decision" value="allow">Allow</button> <button name="decision" value="deny" class="secondary">Deny</button></div>
</form>
<p class="muted">You can withdraw this later: ask an administrator to run <code>mcp-warden grants revoke</code>.</p>
`,
  );
}

/** An error page: what went wrong and what to do, never internals. */
export function renderErrorPage(options: { readonly nonce: string; readonly title: string; readonly message: string }): string {
  return layout(options.nonce, options.title, `<h1>${escapeHtml(options.title)}</h1>\n<p role="alert">${escapeHtml(options.message)}</p>\n`);
}
