/**
 * Property tests: the policy against an independent reference model, and list filtering against
 * call decisions. The model is written differently on purpose (a backtracking glob matcher, no
 * regular expressions), so a shared mistake is unlikely.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Policy, type RoleDefinition } from '../../src/authz/policy.js';
import { createWarden } from '../../src/pipeline.js';
import { filterListResult } from '../../src/mcp/filter.js';
import type { McpAction, Principal, ToolAnnotations, Verb } from '../../src/types.js';
import { principal, view } from '../helpers.js';

/** Reference glob: `**` any, `*` any but '/', `?` one but '/'. */
function globMatches(pattern: string, text: string): boolean {
  if (pattern === '') return text === '';
  if (pattern.startsWith('**')) {
    for (let i = 0; i <= text.length; i++) if (globMatches(pattern.slice(2), text.slice(i))) return true;
    return false;
  }
  const p = pattern[0];
  if (p === '*') {
    for (let i = 0; i <= text.length; i++) {
      if (i > 0 && text[i - 1] === '/') break;
      if (globMatches(pattern.slice(1), text.slice(i))) return true;
    }
    return false;
  }
  if (text === '') return false;
  if (p === '?') return text[0] !== '/' && globMatches(pattern.slice(1), text.slice(1));
  return p === text[0] && globMatches(pattern.slice(1), text.slice(1));
}

const RANK: Record<Verb, number> = { read: 1, write: 2, delete: 3 };

interface Model {
  roles: Record<string, RoleDefinition>;
  globalDeny: string[];
  annotations: Record<string, ToolAnnotations>;
}

function unsafeUri(uri: string): boolean {
  const path = (uri.split(/[?#]/)[0] ?? '').replace(/^[a-z]+:/i, '');
  if (path.split('/').some((s) => s === '.' || s === '..')) return true;
  return /%(2e|2f|5c|25)/i.test(uri) || /%(?![0-9a-f]{2})/i.test(uri) || uri.includes('\\');
}

/** `%XX` decoded (ASCII in this test's alphabet). */
function modelDecode(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const hex = text.slice(i + 1, i + 3);
    if (text[i] === '%' && /^[0-9a-fA-F]{2}$/.test(hex)) {
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else out += text[i];
  }
  return out;
}

function modelCollapse(path: string): string {
  let out = '';
  for (const ch of path) if (!(ch === '/' && out.endsWith('/'))) out += ch;
  return out;
}

/**
 * How servers may read a file URI (the reference for deny rules): as written, decoded, with the
 * scheme and host in lower case, `localhost` as no host and runs of '/' as one; and as a URL parser
 * reads it, rooted (`file:a` is `file:///a`), without its query and fragment.
 */
function modelVariants(uri: string): string[] {
  const colon = uri.indexOf(':');
  const scheme = uri.slice(0, colon).toLowerCase();
  const rest = uri.slice(colon + 1);
  const hasAuthority = rest.startsWith('//');
  const afterSlashes = hasAuthority ? rest.slice(2) : rest;
  const slash = hasAuthority ? afterSlashes.indexOf('/') : 0;
  const rawHost = hasAuthority ? (slash < 0 ? afterSlashes : afterSlashes.slice(0, slash)) : '';
  const tail = hasAuthority ? (slash < 0 ? '' : afterSlashes.slice(slash)) : rest;
  const cut = tail.search(/[?#]/);
  const path = cut < 0 ? tail : tail.slice(0, cut);
  const query = cut < 0 ? '' : tail.slice(cut);
  const writtenHost = rawHost.toLowerCase() === 'localhost' ? '' : rawHost.toLowerCase();
  const written = hasAuthority ? `${scheme}://${writtenHost}${modelCollapse(modelDecode(path))}${modelDecode(query)}` : `${scheme}:${modelCollapse(modelDecode(path))}${modelDecode(query)}`;
  const parsedHost = modelDecode(rawHost).toLowerCase();
  const rooted = path.startsWith('/') ? path : `/${path}`;
  const parsed = `file://${parsedHost === 'localhost' ? '' : parsedHost}${modelCollapse(modelDecode(rooted))}`;
  return [written, parsed];
}

/** The reference decision, for ASCII targets. */
function modelAllows(model: Model, p: Principal, action: McpAction): boolean {
  const roles = p.roles.filter((r) => Object.hasOwn(model.roles, r)).map((r) => model.roles[r] as RoleDefinition);
  const denies = (family: 'tools' | 'resources' | 'prompts', target: string, global: string[]) => {
    const all = [...global, ...roles.flatMap((r) => r[family]?.deny ?? [])];
    const spellings = family === 'resources' ? [target, ...modelVariants(target)] : [target];
    return all.some((pat) => spellings.some((t) => globMatches(pat, t) || globMatches(pat.toLowerCase(), t.toLowerCase())));
  };
  if (action.kind === 'list') return true;
  // A listen is allowed when each resource it follows could be subscribed to (a read of it).
  if (action.kind === 'lifecycle') {
    const resources = (action.subscriptions ?? []).every((target) => target !== '' && modelAllows(model, p, { method: 'resources/subscribe', kind: 'resource', id: 1, target }));
    // Following tasks needs what tasks/get needs: here (no method patterns) the read verb.
    return resources && (action.listensToTasks !== true || roles.some((r) => (r.verbs ?? []).length > 0));
  }
  const target = action.target ?? '';
  if (target === '') return false;
  const family = action.kind === 'tool' ? 'tools' : action.kind === 'resource' ? 'resources' : 'prompts';
  if (family === 'resources' && unsafeUri(target)) return false;
  if (denies(family, target, family === 'tools' ? model.globalDeny : [])) return false;
  if (roles.some((r) => (r[family]?.allow ?? []).some((pat) => globMatches(pat, target)))) return true;
  const a = model.annotations[target];
  const needed = family !== 'tools' ? 1 : a?.readOnlyHint === true ? 1 : a?.destructiveHint === false ? 2 : 3;
  return roles.some((r) => Math.max(0, ...(r.verbs ?? []).map((v) => RANK[v])) >= needed);
}

const nameChar = fc.constantFrom('a', 'b', 'B', '_', '/');
const name = fc.string({ unit: nameChar, minLength: 1, maxLength: 6 });
const pattern = fc.string({ unit: fc.constantFrom('a', 'b', 'B', '_', '/', '*', '?', '**'), minLength: 1, maxLength: 5 });
// Other spellings of the same file too: an encoded unreserved character ('%61' is 'a', '%64ocs'
// 'docs'), an empty segment (a//b), the scheme in capitals, the host `localhost` (encoded too),
// no authority (`file:/a`, `file:a`), a query or a fragment.
const uri = fc
  .tuple(
    fc.constantFrom('file:///', 'file:///', 'file:///', 'FILE:///', 'file://localhost/', 'file://LocalHost/', 'file://localh%6Fst/', 'file:/', 'file:'),
    fc.array(fc.constantFrom('docs', 'etc', 'a', '..', '.', '%2e%2e', '%2F', 'b%20c', 'B', '%61', '%64ocs', ''), { minLength: 1, maxLength: 4 }),
    fc.constantFrom('', '', '', '?', '?q=1', '#x'),
  )
  .map(([prefix, segments, suffix]) => `${prefix}${segments.join('/')}${suffix}`);
const uriPattern = fc
  .array(fc.constantFrom('docs', 'etc', 'a', '*', '**', 'B'), { minLength: 1, maxLength: 3 })
  .map((segments) => `file:///${segments.join('/')}`);
const rules = (p: fc.Arbitrary<string>) =>
  fc.record({ allow: fc.array(p, { maxLength: 2 }), deny: fc.array(p, { maxLength: 2 }) }, { requiredKeys: [] });
const role = fc.record(
  {
    verbs: fc.subarray(['read', 'write', 'delete'] as Verb[]),
    tools: rules(pattern),
    prompts: rules(pattern),
    resources: rules(uriPattern),
  },
  { requiredKeys: [] },
);
const annotations = fc.record({ readOnlyHint: fc.boolean(), destructiveHint: fc.boolean() }, { requiredKeys: [] });
const model = fc.record({
  roles: fc.dictionary(fc.constantFrom('r1', 'r2', 'r3'), role),
  globalDeny: fc.array(pattern, { maxLength: 2 }),
  annotations: fc.dictionary(name, annotations),
});
const action: fc.Arbitrary<McpAction> = fc.oneof(
  name.map((target) => ({ method: 'tools/call', kind: 'tool' as const, id: 1, target })),
  name.map((target) => ({ method: 'prompts/get', kind: 'prompt' as const, id: 1, target })),
  uri.map((target) => ({ method: 'resources/read', kind: 'resource' as const, id: 1, target })),
  fc.constant({ method: 'tools/list', kind: 'list' as const, id: 1, list: 'tools' as const }),
  // 2026-07-28 subscriptions/listen, with resource subscriptions ('' stands for a malformed filter).
  fc.record({ subscriptions: fc.array(fc.oneof(uri, uri, fc.constant('')), { minLength: 1, maxLength: 3 }), tasks: fc.boolean() }).map(({ subscriptions, tasks }) => ({
    method: 'subscriptions/listen',
    kind: 'lifecycle' as const,
    id: 1,
    subscriptions,
    ...(tasks ? { listensToTasks: true } : {}),
  })),
  fc.constant({ method: 'subscriptions/listen', kind: 'lifecycle' as const, id: 1, listensToTasks: true }),
  fc.constant({ method: 'subscriptions/listen', kind: 'lifecycle' as const, id: 1 }),
);
const principalRoles = fc.subarray(['r1', 'r2', 'r3', 'unknown']);

function build(m: Model): Policy {
  const policy = new Policy({ roles: m.roles, deny: { tools: m.globalDeny } });
  policy.annotations.learn(Object.entries(m.annotations).map(([n, a]) => ({ name: n, annotations: a })));
  return policy;
}

describe('policy properties', () => {
  it('allows exactly what the reference model allows (nothing more, nothing less)', () => {
    fc.assert(
      fc.property(model, principalRoles, action, (m, roles, act) => {
        const p = principal(roles);
        expect(build(m).decide(p, act).allow).toBe(modelAllows(m, p, act));
      }),
      { numRuns: 3000 },
    );
  });

  it('one policy asked again and again (its remembered decisions) agrees with the model while annotations change', () => {
    // A few tool names, so the same tool is decided, re-annotated and decided again.
    const few = fc.constantFrom('a', 'b', 'ab', 'B', 'a_b');
    const fewTools = few.map((target): McpAction => ({ method: 'tools/call', kind: 'tool', id: 1, target }));
    const step = fc.oneof(
      fc.record({ type: fc.constant('decide' as const), roles: principalRoles, act: fc.oneof(fewTools, fewTools, action) }),
      fc.record({ type: fc.constant('learn' as const), tool: few, hints: annotations }),
    );
    fc.assert(
      fc.property(model, fc.array(step, { minLength: 10, maxLength: 40, size: 'max' }), (m, steps) => {
        const policy = build(m);
        const current: Model = { ...m, annotations: { ...m.annotations } };
        // One frozen principal per role set, reused as a verifier's cache would.
        const principals = new Map<string, Principal>();
        for (const s of steps) {
          if (s.type === 'learn') {
            policy.annotations.learn([{ name: s.tool, annotations: s.hints }]);
            current.annotations[s.tool] = s.hints;
            continue;
          }
          const key = JSON.stringify(s.roles);
          let p = principals.get(key);
          if (p === undefined) principals.set(key, (p = { ...principal([]), roles: Object.freeze([...s.roles]) }));
          expect(policy.decide(p, s.act).allow).toBe(modelAllows(current, p, s.act));
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('deny always wins: adding a role never turns a denied-by-pattern action into an allow', () => {
    fc.assert(
      fc.property(model, principalRoles, fc.constantFrom('r1', 'r2', 'r3'), action, (m, roles, extra, act) => {
        const policy = build(m);
        const before = policy.decide(principal(roles), act);
        if (before.allow || !before.rule.includes('.deny')) return;
        expect(policy.decide(principal([...roles, extra]), act).allow).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('list filtering agrees with call decisions', () => {
    fc.assert(
      fc.property(model, principalRoles, fc.uniqueArray(fc.record({ name, annotations }), { selector: (t) => t.name, maxLength: 8 }), (m, roles, tools) => {
        const policy = build(m);
        const p = principal(roles);
        const result = filterListResult('tools', { tools, nextCursor: 'c' }, p, policy);
        const kept = new Set((result['tools'] as { name: string }[]).map((t) => t.name));
        expect(result['nextCursor']).toBe('c');
        for (const t of tools) {
          expect(kept.has(t.name)).toBe(policy.decide(p, { method: 'tools/call', kind: 'tool', id: 1, target: t.name }).allow);
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('the pipeline forwards a body only when every action in it is allowed', async () => {
    await fc.assert(
      fc.asyncProperty(model, principalRoles, fc.array(action, { minLength: 1, maxLength: 4 }), async (m, roles, actions) => {
        const policy = build(m);
        const warden = createWarden({ policy, tokens: [{ id: 'p', token: 'tok', roles }] });
        const paramsOf = (a: McpAction): Record<string, unknown> | undefined => {
          if (a.kind === 'list') return undefined;
          if (a.kind === 'lifecycle') {
            // The classifier's '' is a filter that is no array of strings.
            const uris = a.subscriptions ?? [];
            return {
              notifications: {
                toolsListChanged: true,
                ...(uris.length === 0 ? {} : { resourceSubscriptions: uris.includes('') ? [...uris.filter((u) => u !== ''), 7] : uris }),
                ...(a.listensToTasks === true ? { taskIds: ['t1'] } : {}),
              },
            };
          }
          return a.kind === 'resource' ? { uri: a.target } : { name: a.target };
        };
        const messages = actions.map((a, i) => ({ jsonrpc: '2.0', id: i, method: a.method, ...(a.kind === 'list' ? {} : { params: paramsOf(a) }) }));
        const body = JSON.stringify(messages.length === 1 ? messages[0] : messages);
        const result = await warden.handle(
          view({ headers: [['host', '127.0.0.1'], ['content-type', 'application/json'], ['authorization', 'Bearer tok']] }),
          { read: async () => body },
        );
        const p = principal(roles);
        const everyAllowed = actions.every((a) => modelAllows(m, p, a));
        expect(result.type).toBe(everyAllowed ? 'forward' : 'respond');
      }),
      { numRuns: 500 },
    );
  });
});
