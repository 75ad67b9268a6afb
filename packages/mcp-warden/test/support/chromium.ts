/**
 * Headless Chromium (Debian's `chromium`, driven by playwright-core) playing the user of an OAuth
 * flow: it opens an authorization URL, signs in on the authorization server's login page, answers
 * its consent page and follows the redirect back to the client's callback. Each page it passes is
 * screenshotted (into `artifacts/screenshots/` at the repository root) and checked for basic
 * accessibility in the browser itself.
 *
 * The page contract (kept by the authorization server, src/oauth/): login fields
 * `input[name=username]` and `input[name=password]` labelled "Username" and "Password", a "Sign in"
 * button, errors in `[role=alert]`; consent buttons `button[name=decision][value=allow]` ("Allow")
 * and `[value=deny]` ("Deny").
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, type Page, chromium } from 'playwright-core';

/** Where Debian's chromium package puts the browser; `MCP_WARDEN_CHROMIUM` overrides it. */
export const CHROMIUM_PATH = process.env['MCP_WARDEN_CHROMIUM'] ?? '/usr/bin/chromium';

/** `artifacts/screenshots/` at the repository root (git-ignored; the test run's evidence). */
export const SCREENSHOT_DIR = fileURLToPath(new URL('../../../../artifacts/screenshots/', import.meta.url));

/** The flags every test browser runs with (headless, no sandbox, nothing fetched from outside). */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];

/** Upper bound for one browser step (a navigation, a click, a form post and its redirects). */
const STEP_TIMEOUT_MS = 15_000;

/**
 * Fails (never skips) when the browser is missing: these tests are the issue's evidence, and a
 * silent skip would hide that they did not run.
 */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}. The OAuth end-to-end tests need a real browser: ` +
        'install Debian\'s package (`apt-get update && apt-get install -y chromium`; .ci/run does this) ' +
        'or point MCP_WARDEN_CHROMIUM at a Chromium binary.',
    );
  }
}

/** What the in-page accessibility check found on one page. */
export interface AccessibilityReport {
  readonly url: string;
  /** Human-readable problems; empty when the page passes. */
  readonly problems: string[];
  /** The focusable controls, in document order, described as `tag[name=…]` or by their text. */
  readonly controls: string[];
  /** The controls reached by pressing Tab from the top of the page, in order. */
  readonly tabOrder: string[];
}

/** One page the browser went through during a flow. */
export interface VisitedPage {
  readonly kind: 'login' | 'consent';
  readonly url: string;
  readonly title: string;
  readonly screenshot: string;
  readonly accessibility: AccessibilityReport;
  /** The visible text of the page (what the user was shown: client name, redirect host, scopes). */
  readonly text: string;
}

export interface LoginAndConsentOptions {
  readonly username: string;
  readonly password: string;
  /** File names are `<name>-<n>-<kind>.png`, n counting the pages shown under this name; default `flow`. */
  readonly name?: string;
  /** Default: {@link SCREENSHOT_DIR}. */
  readonly screenshotDir?: string;
  /** The answer on the consent page; default `allow`. */
  readonly decision?: 'allow' | 'deny';
}

export interface FlowResult {
  /** The URL the browser was finally sent to: the client's redirect URI with `code` (or `error`), `state`, `iss`. */
  readonly callback: URL;
  /** The login and consent pages in the order they were shown (login is skipped while a session lasts). */
  readonly pages: VisitedPage[];
}

/** A headless Chromium with its own temporary profile. */
export interface ChromiumDriver {
  readonly context: BrowserContext;
  /** Runs the user's part of an authorization request, from `authorizationUrl` to the client's callback. */
  loginAndConsent(authorizationUrl: string | URL, options: LoginAndConsentOptions): Promise<FlowResult>;
  /** Signs in with a wrong password and returns the error the login page shows (screenshotted too). */
  failedLogin(authorizationUrl: string | URL, options: LoginAndConsentOptions): Promise<{ alert: string; page: VisitedPage }>;
  /** Forgets cookies (the authorization server's login session), as a new browser would. */
  clearCookies(): Promise<void>;
  close(): Promise<void>;
}

/** Launches Chromium with a fresh temporary user-data-dir. */
export async function launchChromium(): Promise<ChromiumDriver> {
  requireChromium();
  const profile = mkdtempSync(join(tmpdir(), 'mcp-warden-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS],
      timeout: 60_000,
      viewport: { width: 1024, height: 768 },
      locale: 'en-US',
    });
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
  // esbuild (tsx, vitest) wraps named functions in `__name(…)`; functions serialised into the page need it too.
  await context.addInitScript('globalThis.__name = (fn) => fn;');
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  /** Pages screenshotted per flow name: file names are stable from run to run, so a rerun replaces them. */
  const shots = new Map<string, number>();

  async function visit(page: Page, kind: VisitedPage['kind'], options: LoginAndConsentOptions): Promise<VisitedPage> {
    const dir = options.screenshotDir ?? SCREENSHOT_DIR;
    mkdirSync(dir, { recursive: true });
    const name = options.name ?? 'flow';
    const n = (shots.get(name) ?? 0) + 1;
    shots.set(name, n);
    const screenshot = join(dir, `${name}-${n}-${kind}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    const accessibility = await checkAccessibility(page);
    return { kind, url: page.url(), title: await page.title(), screenshot, accessibility, text: await page.locator('body').innerText() };
  }

  async function openAuthorization(authorizationUrl: string | URL): Promise<{ page: Page; callbackPrefix: string }> {
    const url = new URL(authorizationUrl);
    const redirectUri = url.searchParams.get('redirect_uri');
    if (redirectUri === null) throw new Error(`authorization URL has no redirect_uri: ${url.href}`);
    const page = await context.newPage();
    await page.goto(url.href, { waitUntil: 'domcontentloaded' });
    return { page, callbackPrefix: redirectUri };
  }

  /** Which page the browser is on now: the login form, the consent form, or the client's callback. */
  async function where(page: Page, callbackPrefix: string): Promise<'login' | 'consent' | 'callback'> {
    const atCallback = (): boolean => page.url().startsWith(callbackPrefix);
    if (atCallback()) return 'callback';
    const login = page.locator('input[name=password]');
    const consent = page.locator('button[name=decision][value=allow]');
    await Promise.race([
      login.waitFor({ state: 'visible' }),
      consent.waitFor({ state: 'visible' }),
      page.waitForURL((u) => u.href.startsWith(callbackPrefix)),
    ]).catch((error: unknown) => {
      throw new Error(`the browser reached neither a login page, a consent page nor ${callbackPrefix}; it is at ${page.url()}: ${String(error)}`);
    });
    if (atCallback()) return 'callback';
    if (await login.isVisible()) return 'login';
    return 'consent';
  }

  async function fillLogin(page: Page, username: string, password: string): Promise<void> {
    // By label, not by name: a field Playwright cannot find by its label is not labelled for a screen reader either.
    await page.getByLabel('Username', { exact: true }).fill(username);
    await page.getByLabel('Password', { exact: true }).fill(password);
  }

  return {
    context,

    async loginAndConsent(authorizationUrl, options) {
      const { page, callbackPrefix } = await openAuthorization(authorizationUrl);
      const pages: VisitedPage[] = [];
      try {
        for (let step = 0; step < 4; step++) {
          const at = await where(page, callbackPrefix);
          if (at === 'callback') return { callback: new URL(page.url()), pages };
          if (at === 'login') {
            await fillLogin(page, options.username, options.password);
            pages.push(await visit(page, 'login', options));
            const before = page.url();
            const alert = page.locator('[role=alert]');
            await page.getByRole('button', { name: 'Sign in', exact: true }).click();
            await Promise.race([page.waitForURL((u) => u.href !== before, { waitUntil: 'domcontentloaded' }), alert.first().waitFor({ state: 'visible' })]).catch(() => {});
            if ((await page.locator('input[name=password]').isVisible()) && (await alert.count()) > 0) {
              throw new Error(`login refused: ${(await alert.first().innerText()).trim()}`);
            }
          } else {
            pages.push(await visit(page, 'consent', options));
            const before = page.url();
            await page.locator(`button[name=decision][value=${options.decision ?? 'allow'}]`).click();
            await page.waitForURL((u) => u.href !== before, { waitUntil: 'domcontentloaded' }).catch(() => {});
          }
        }
        throw new Error(`no redirect to ${callbackPrefix} after four pages; the browser is at ${page.url()}`);
      } finally {
        await page.close().catch(() => {});
      }
    },

    async failedLogin(authorizationUrl, options) {
      const { page, callbackPrefix } = await openAuthorization(authorizationUrl);
      try {
        const at = await where(page, callbackPrefix);
        if (at !== 'login') throw new Error(`expected the login page, got the ${at} page at ${page.url()}`);
        await fillLogin(page, options.username, options.password);
        await page.getByRole('button', { name: 'Sign in', exact: true }).click();
        const alert = page.locator('[role=alert]');
        await alert.first().waitFor({ state: 'visible' });
        return { alert: (await alert.first().innerText()).trim(), page: await visit(page, 'login', options) };
      } finally {
        await page.close().catch(() => {});
      }
    },

    async clearCookies() {
      await context.clearCookies();
    },

    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Basic accessibility checks run in the page: `lang` set, exactly one `h1`, every visible form
 * field with a non-empty label (`<label>`, `aria-label` or `aria-labelledby`), every focusable
 * control reachable with Tab, and text contrast of at least 4.5:1 (3:1 for large text, WCAG 2.x AA)
 * against the nearest opaque background.
 */
export async function checkAccessibility(page: Page): Promise<AccessibilityReport> {
  const found = await page.evaluate(() => {
    const problems: string[] = [];
    const lang = document.documentElement.getAttribute('lang');
    if (lang === null || lang.trim() === '') problems.push('<html> has no lang attribute');
    const h1 = document.querySelectorAll('h1').length;
    if (h1 !== 1) problems.push(`expected exactly one <h1>, found ${h1}`);

    const visible = (el: Element): boolean => {
      const style = getComputedStyle(el);
      const box = el.getBoundingClientRect();
      return style.visibility !== 'hidden' && style.display !== 'none' && box.width > 0 && box.height > 0;
    };
    const describe = (el: Element): string => {
      const name = el.getAttribute('name');
      const value = el.getAttribute('value');
      const text = (el.textContent ?? '').trim().replace(/\s+/g, ' ').slice(0, 30);
      return `${el.tagName.toLowerCase()}${name === null ? '' : `[name=${name}]`}${value === null || el.tagName !== 'BUTTON' ? '' : `[value=${value}]`}${text === '' ? '' : ` "${text}"`}`;
    };
    const labelOf = (el: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement): string => {
      const aria = el.getAttribute('aria-label');
      if (aria !== null && aria.trim() !== '') return aria.trim();
      const by = el.getAttribute('aria-labelledby');
      if (by !== null) {
        const text = by
          .split(/\s+/)
          .map((id) => document.getElementById(id)?.textContent ?? '')
          .join(' ')
          .trim();
        if (text !== '') return text;
      }
      return Array.from(el.labels ?? [])
        .map((l) => (l.textContent ?? '').trim())
        .join(' ')
        .trim();
    };
    for (const field of Array.from(document.querySelectorAll<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>('input, select, textarea'))) {
      if (field instanceof HTMLInputElement && ['hidden', 'submit', 'button', 'reset', 'image'].includes(field.type)) continue;
      if (!visible(field)) continue;
      if (labelOf(field) === '') problems.push(`${describe(field)} has no label`);
    }

    const controls = Array.from(document.querySelectorAll<HTMLElement>('a[href], button, input, select, textarea, [tabindex]')).filter(
      (el) => visible(el) && !(el as HTMLButtonElement).disabled && el.tabIndex >= 0 && !(el instanceof HTMLInputElement && el.type === 'hidden'),
    );
    controls.forEach((el, i) => el.setAttribute('data-a11y-control', String(i)));

    // Contrast: WCAG relative luminance of the text colour against the first opaque background up the tree.
    const parse = (color: string): [number, number, number, number] | undefined => {
      const m = /rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)/.exec(color);
      return m === null ? undefined : [Number(m[1]), Number(m[2]), Number(m[3]), m[4] === undefined ? 1 : Number(m[4])];
    };
    const luminance = ([r, g, b]: [number, number, number, number]): number => {
      const channel = (v: number): number => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    };
    const background = (el: Element | null): [number, number, number, number] => {
      for (let at = el; at !== null; at = at.parentElement) {
        const bg = parse(getComputedStyle(at).backgroundColor);
        if (bg !== undefined && bg[3] >= 0.99) return bg;
      }
      return [255, 255, 255, 1];
    };
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const checked = new Set<Element>();
    for (let node = walker.nextNode(); node !== null; node = walker.nextNode()) {
      const el = node.parentElement;
      if (el === null || checked.has(el) || (node.textContent ?? '').trim() === '' || !visible(el)) continue;
      checked.add(el);
      const style = getComputedStyle(el);
      const fg = parse(style.color);
      if (fg === undefined) continue;
      const [l1, l2] = [luminance(fg), luminance(background(el))].sort((a, b) => b - a) as [number, number];
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) problems.push(`low contrast ${ratio.toFixed(2)}:1 for "${(node.textContent ?? '').trim().slice(0, 40)}"`);
    }
    return { problems, controls: controls.map(describe) };
  });

  // Tab through the page from the top: every control must be reached.
  // Focusing the body moves the sequential focus navigation starting point to the top of the page.
  await page.evaluate(() => {
    document.body.setAttribute('tabindex', '-1');
    document.body.focus();
    document.body.removeAttribute('tabindex');
  });
  const tabOrder: string[] = [];
  const reached = new Set<string>();
  for (let i = 0; i < 2 * found.controls.length + 2 && reached.size < found.controls.length; i++) {
    await page.keyboard.press('Tab');
    const index = await page.evaluate(() => document.activeElement?.getAttribute('data-a11y-control') ?? null);
    if (index === null) continue;
    if (!reached.has(index)) tabOrder.push(found.controls[Number(index)] ?? index);
    reached.add(index);
  }
  const problems = [...found.problems];
  found.controls.forEach((control, i) => {
    if (!reached.has(String(i))) problems.push(`${control} is not reachable with Tab`);
  });
  return { url: page.url(), problems, controls: found.controls, tabOrder };
}
