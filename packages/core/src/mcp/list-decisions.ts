import type { Policy } from '../authz/policy.js';
import type { ListFamily, McpAction, Principal, ToolAnnotations } from '../types.js';

/**
 * Which list items a principal may see, remembered across lists. A 1,000-tool `tools/list` asks the
 * policy 1,000 questions whose answers rarely change; `decide` builds a rule and a sentence for each
 * (~0.5 µs). The memo answers from a map instead.
 *
 * An answer depends on the policy (the key of the outer map: a reload builds a new one), on what
 * `Policy.decide` reads of the principal (its roles, its scopes and whether they limit it: the
 * principal key), on the item (family and name), and for a tool on its annotations as the registry
 * resolves them now (configured, learned, or read live from an SDK server): those are compared on
 * every lookup, so a tool whose annotations changed is decided afresh. Nothing from a response
 * (its text, its request id) is part of any key.
 */

/** Principals remembered per policy, and items per principal; past these the oldest are forgotten. */
const MAX_PRINCIPALS = 256;
const MAX_ITEMS = 16_384;

const memos = new WeakMap<Policy, Map<string, Map<string, number>>>();

/** 0–80: each of the four hints absent, false or true. */
function annotationState(annotations: ToolAnnotations | undefined): number {
  if (annotations === undefined) return 0;
  const state = (hint: boolean | undefined): number => (hint === undefined ? 0 : hint ? 2 : 1);
  return state(annotations.readOnlyHint) + 3 * state(annotations.destructiveHint) + 9 * state(annotations.idempotentHint) + 27 * state(annotations.openWorldHint);
}

/** Everything of the principal that `Policy.decide` reads, unambiguously (JSON keeps ['a,b'] apart from ['a','b']). */
function principalKey(principal: Principal, family: ListFamily): string {
  return JSON.stringify([family, principal.scopeLimited === true, principal.roles, principal.scopes]);
}

/** The action a list item stands for: what calling, reading or getting it would be. */
export function actionForItem(family: ListFamily, target: string): McpAction {
  switch (family) {
    case 'tools':
      return { method: 'tools/call', kind: 'tool', target };
    case 'prompts':
      return { method: 'prompts/get', kind: 'prompt', target };
    case 'resources':
      return { method: 'resources/read', kind: 'resource', target };
    case 'resourceTemplates':
      return { method: 'resources/read', kind: 'resource', target, template: true };
  }
}

/**
 * A function telling whether `principal` may use the item named `target` of `family`: the same
 * answer as `policy.decide(principal, actionForItem(family, target)).allow`, memoised.
 */
export function listItemDecider(policy: Policy, principal: Principal, family: ListFamily): (target: string) => boolean {
  let byPrincipal = memos.get(policy);
  if (byPrincipal === undefined) {
    byPrincipal = new Map();
    memos.set(policy, byPrincipal);
  }
  const key = principalKey(principal, family);
  let answers = byPrincipal.get(key);
  if (answers === undefined) {
    if (byPrincipal.size >= MAX_PRINCIPALS) byPrincipal.delete(byPrincipal.keys().next().value as string);
    answers = new Map();
    byPrincipal.set(key, answers);
  }
  const memo = answers;
  const tools = family === 'tools';
  return (target) => {
    // An answer is stored as annotation state × 2 + allowed, so a changed annotation misses.
    const state = tools ? annotationState(policy.annotations.get(target)) : 0;
    const known = memo.get(target);
    if (known !== undefined && known >> 1 === state) return (known & 1) === 1;
    const allow = policy.decide(principal, actionForItem(family, target)).allow;
    if (known === undefined && memo.size >= MAX_ITEMS) memo.clear();
    memo.set(target, state * 2 + (allow ? 1 : 0));
    return allow;
  };
}

/** Signatures per policy, per remembered list (its frozen items array), per principal key. */
const signatures = new WeakMap<Policy, WeakMap<object, Map<string, { readonly stamp: number; readonly signature: string }>>>();
const MAX_SIGNATURES_PER_LIST = 64;

/**
 * Which of `items` `principal` may use, as one character per item ('1' kept, '0' not; an item
 * without a name is not kept): the answers of {@link listItemDecider}. For the same items array (a
 * remembered scan's, frozen), policy and principal key the string is remembered as long as the
 * registry's stamp stays the same, so a list seen again costs no lookup per item; a registry that
 * reads a server live has no stamp and is asked every time.
 */
export function keptSignature(policy: Policy, principal: Principal, family: ListFamily, items: readonly { readonly key?: string | undefined }[]): string {
  const stamp = family === 'tools' ? policy.annotations.stamp : 0;
  let byPrincipal: Map<string, { readonly stamp: number; readonly signature: string }> | undefined;
  const key = principalKey(principal, family);
  if (stamp !== undefined) {
    let byList = signatures.get(policy);
    if (byList === undefined) signatures.set(policy, (byList = new WeakMap()));
    byPrincipal = byList.get(items);
    if (byPrincipal === undefined) byList.set(items, (byPrincipal = new Map()));
    const known = byPrincipal.get(key);
    if (known !== undefined && known.stamp === stamp) return known.signature;
  }
  const allowed = listItemDecider(policy, principal, family);
  let signature = '';
  for (const item of items) signature += item.key !== undefined && allowed(item.key) ? '1' : '0';
  if (byPrincipal !== undefined && stamp !== undefined) {
    if (byPrincipal.size >= MAX_SIGNATURES_PER_LIST && !byPrincipal.has(key)) byPrincipal.delete(byPrincipal.keys().next().value as string);
    byPrincipal.set(key, { stamp, signature });
  }
  return signature;
}
