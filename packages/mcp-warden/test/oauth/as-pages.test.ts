/**
 * The sign-in and consent pages: the contract the browser tests rely on, accessibility basics,
 * security headers, CSRF, no user enumeration, and remembered consent revoked through GrantService
 * (what `mcp-warden grants revoke` runs).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GrantService } from '../../src/oauth/grants.js';
import { redisBackend } from '../../src/ratelimit/backend.js';
import { createLoginLimiter } from '../../src/ratelimit/login-limiter.js';
import { Browser, PASSWORD, actionOf, authorize, authorizeUrl, closeAll, csrfOf, fullFlow, pkce, registerClient, startAs, tokenRequest } from './as-harness.js';
import type { RunningAs } from './as-harness.js';

afterEach(closeAll);

/** Opens the authorization URL in `browser` and follows redirects to the first page. */
async function firstPage(as: RunningAs, browser: Browser, client: { client_id: string; redirect_uri: string }, scope = 'mcp:read'): Promise<{ response: Response; html: string }> {
  const { challenge } = pkce();
  let response = await browser.fetch(authorizeUrl(as.base, { clientId: client.client_id, redirectUri: client.redirect_uri, resource: as.resource, challenge, challengeMethod: 'S256', scope }));
  while (response.status === 303) response = await browser.fetch(new URL(response.headers.get('location') as string, as.base).href);
  return { response, html: await response.text() };
}

function expectSecurityHeaders(response: Response, redirectOrigin: string): void {
  const csp = response.headers.get('content-security-policy') ?? '';
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).toContain("base-uri 'none'");
  expect(csp).toContain(redirectOrigin === '' ? "form-action 'self';" : `form-action 'self' ${redirectOrigin}`);
  expect(csp).not.toContain('script-src');
  expect(csp).not.toContain('unsafe-inline');
  expect(response.headers.get('x-frame-options')).toBe('DENY');
  expect(response.headers.get('referrer-policy')).toBe('no-referrer');
  expect(response.headers.get('cache-control')).toBe('no-store');
  expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
}

describe('sign-in page', () => {
  it('keeps the form contract, is labelled, and carries the security headers with a style nonce', async () => {
    const as = await startAs();
    const client = await registerClient(as.base, { client_name: 'Claude <Desktop>' });
    const { response, html } = await firstPage(as, new Browser(), client);
    expect(response.status).toBe(200);
    expectSecurityHeaders(response, 'http://127.0.0.1:33418');
    const nonce = /style-src 'nonce-([^']+)'/.exec(response.headers.get('content-security-policy') ?? '')?.[1];
    expect(html).toContain(`<style nonce="${nonce}">`);
    expect(html).toContain('<html lang="en">');
    expect(html).toMatch(/<h1>Sign in<\/h1>/);
    expect(html).toContain('<label for="username">Username</label>');
    expect(html).toContain('<label for="password">Password</label>');
    expect(html).toMatch(/<input id="username" name="username"/);
    expect(html).toMatch(/<input id="password" name="password" type="password"/);
    expect(html).toContain('<button type="submit">Sign in</button>');
    expect(html).toContain(':focus-visible{outline:3px solid');
    expect(html).toContain('Claude &#60;Desktop&#62;');
    expect(html).not.toContain('Claude <Desktop>');
    expect(html).toContain('127.0.0.1:33418');
    expect(html).not.toContain('<script');
  });

  it('brute force: after the allowed failures a name is refused (429, Retry-After) before its password is checked, even the right one', async () => {
    const limit = { attempts: 3, window: 60_000, block: 120_000 };
    const as = await startAs({ loginLimiter: createLoginLimiter({ perAddress: { ...limit, attempts: 100 }, perAccount: limit }) });
    const client = await registerClient(as.base);
    const browser = new Browser();
    let { html } = await firstPage(as, browser, client);
    for (let i = 0; i < 3; i++) {
      const response = await browser.post(new URL(actionOf(html), as.base).href, { csrf: csrfOf(html), username: 'alice', password: `wrong-${i}` });
      expect(response.status).toBe(200);
      html = await response.text();
    }
    as.users.calls.length = 0;
    const blocked = await browser.post(new URL(actionOf(html), as.base).href, { csrf: csrfOf(html), username: 'ALICE', password: PASSWORD });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await blocked.text()).toContain('Too many failed sign-ins');
    expect(as.users.calls).toEqual([]);
    // Another name from the same address is not affected.
    const other = await browser.post(new URL(actionOf(html), as.base).href, { csrf: csrfOf(html), username: 'bob', password: 'nope' });
    expect(other.status).toBe(200);
  });

  it('brute force, fail closed: with the counters\' Redis unreachable, a sign-in gets 503 and its password is never checked', async () => {
    // Port 1 on loopback: nothing listens there, so the limiter's store is down.
    const down = redisBackend({ url: 'redis://127.0.0.1:1', keyPrefix: 'mcpw-test-down', connectTimeoutMs: 200 });
    try {
      const limit = { attempts: 3, window: 60_000, block: 120_000 };
      const as = await startAs({ loginLimiter: createLoginLimiter({ perAddress: limit, perAccount: limit }, down) });
      const client = await registerClient(as.base);
      const browser = new Browser();
      const { html } = await firstPage(as, browser, client);
      as.users.calls.length = 0;
      const refused = await browser.post(new URL(actionOf(html), as.base).href, { csrf: csrfOf(html), username: 'alice', password: PASSWORD });
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('5');
      expect(await refused.text()).toContain('Signing in is unavailable for a moment');
      expect(as.users.calls).toEqual([]);
    } finally {
      await down.close();
    }
  });

  it('a wrong password shows the page again with an alert; an unknown user gets the same page through the same path', async () => {
    const as = await startAs();
    const client = await registerClient(as.base);
    const answers: string[] = [];
    for (const username of ['alice', 'nobody']) {
      const browser = new Browser();
      const { html } = await firstPage(as, browser, client);
      as.users.calls.length = 0;
      const response = await browser.post(new URL(actionOf(html), as.base).href, { csrf: csrfOf(html), username, password: `${PASSWORD}!` });
      expect(response.status).toBe(200);
      expect(as.users.calls).toEqual([`authenticate:${username}`]);
      const page = await response.text();
      expect(page).toContain('<p role="alert" id="login-error">The username or password is not correct.</p>');
      expect(page).toContain('aria-describedby="login-error"');
      answers.push(
        page
          .replace(/nonce="[^"]+"/, '')
          .replace(/name="csrf" value="[^"]+"/, '')
          .replace(/\/oauth\/interaction\/[^/"]+/, '')
          .replace(`value="${username}"`, ''),
      );
    }
    expect(answers[0]).toBe(answers[1]);
  });

  it('after a failed attempt, the right password signs in', async () => {
    const as = await startAs();
    const client = await registerClient(as.base);
    const browser = new Browser();
    const { html } = await firstPage(as, browser, client);
    const again = await (await browser.post(new URL(actionOf(html), as.base).href, { csrf: csrfOf(html), username: 'alice', password: 'wrong' })).text();
    const response = await browser.post(new URL(actionOf(again), as.base).href, { csrf: csrfOf(again), username: 'alice', password: PASSWORD });
    expect(response.status).toBe(303);
  });
});

describe('Security: CSRF', () => {
  it('refuses a form post without the token, with a wrong one, or with another interaction\'s, with 403', async () => {
    const as = await startAs();
    const client = await registerClient(as.base);
    const browser = new Browser();
    const { html } = await firstPage(as, browser, client);
    const other = await firstPage(as, new Browser(), client);
    const action = new URL(actionOf(html), as.base).href;
    for (const csrf of [undefined, '', 'x'.repeat(43), csrfOf(other.html)]) {
      as.users.calls.length = 0;
      const response = await browser.post(action, { ...(csrf === undefined ? {} : { csrf }), username: 'alice', password: PASSWORD });
      expect(response.status, String(csrf)).toBe(403);
      expectSecurityHeaders(response, '');
      expect(as.users.calls).toEqual([]);
    }
    // The consent form too.
    let next = await browser.post(action, { csrf: csrfOf(html), username: 'alice', password: PASSWORD });
    while (next.status === 303) next = await browser.fetch(new URL(next.headers.get('location') as string, as.base).href);
    const consent = await next.text();
    expect(consent).toContain('name="decision"');
    const denied = await browser.post(new URL(actionOf(consent), as.base).href, { decision: 'allow' });
    expect(denied.status).toBe(403);
  });

  it('an interaction page opened without its cookie (another browser) is refused', async () => {
    const as = await startAs();
    const client = await registerClient(as.base);
    const { response } = await firstPage(as, new Browser(), client);
    const page = await fetch(response.url);
    expect(page.status).toBe(400);
    expect(await page.text()).toContain('This sign-in page has expired');
  });
});

describe('consent', () => {
  it('shows the client, the redirect host, and each scope with a description; the buttons keep the contract', async () => {
    const as = await startAs();
    const { pages } = await fullFlow(as, { scope: 'mcp:read mcp:write' });
    const consent = pages[1]?.html as string;
    expect(consent).toContain('<button name="decision" value="allow">Allow</button>');
    expect(consent).toContain('<button name="decision" value="deny" class="secondary">Deny</button>');
    expect(consent).toContain('Test MCP client');
    expect(consent).toContain('127.0.0.1:33418');
    expect(consent).toContain('<dt><code>mcp:read</code></dt><dd>Use MCP servers with the permissions of the role reader.</dd>');
    expect(consent).toContain('<dt><code>mcp:write</code></dt><dd>Use MCP servers with the permissions of the role writer.</dd>');
    expect(consent).toContain(as.resource);
    expect(consent).toContain('<strong>alice</strong>');
  });

  it('is remembered per user and client (also from another browser), asks again for a new scope, and is revoked by GrantService', async () => {
    const as = await startAs();
    const first = await fullFlow(as, { scope: 'mcp:read' });
    const client = first.client;
    const run = async (browser: Browser, scope: string) => {
      const { verifier, challenge } = pkce();
      const flow = await authorize(browser, as.base, { clientId: client.client_id, redirectUri: client.redirect_uri, resource: as.resource, challenge, challengeMethod: 'S256', scope });
      return { ...flow, verifier };
    };

    // Same browser: signed in and consented, so straight back to the client.
    const again = await run(first.browser, 'mcp:read');
    expect(again.pages).toEqual([]);
    expect(again.callback.searchParams.get('code')).not.toBeNull();

    // Another browser: sign in, but no consent page.
    const elsewhere = await run(new Browser(), 'mcp:read');
    expect(elsewhere.pages.map((p) => (p.html?.includes('name="password"') ? 'login' : 'consent'))).toEqual(['login']);

    // A scope not granted yet: consent for that scope only.
    const more = await run(first.browser, 'mcp:read mcp:write');
    expect(more.pages).toHaveLength(1);
    expect(more.pages[0]?.html).toContain('<code>mcp:write</code>');
    expect(more.pages[0]?.html).not.toContain('<code>mcp:read</code>');

    const grants = new GrantService(as.store.oauth);
    const listed = await grants.list({ accountId: 'usr_alice' });
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ accountId: 'usr_alice', clientId: client.client_id, resources: [as.resource] });
    expect([...(listed[0]?.scopes ?? [])].sort()).toEqual(['mcp:read', 'mcp:write']);
    expect(await grants.list({ accountId: 'usr_bob' })).toEqual([]);

    expect(await grants.revoke('usr_alice', client.client_id)).toBe(1);
    expect(await grants.list()).toEqual([]);
    const refreshed = await tokenRequest(as.base, { grant_type: 'refresh_token', refresh_token: first.tokens['refresh_token'] as string, client_id: client.client_id });
    expect(refreshed.status).toBe(400);
    expect(refreshed.body['error']).toBe('invalid_grant');

    // The next authorization asks again (the session still knows who the user is).
    const afterRevoke = await run(first.browser, 'mcp:read');
    expect(afterRevoke.pages).toHaveLength(1);
    expect(afterRevoke.pages[0]?.html).toContain('name="decision"');
  });
});
