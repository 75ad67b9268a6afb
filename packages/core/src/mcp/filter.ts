import type { Policy } from '../authz/policy.js';
import type { JsonRpcId, ListFamily, McpAction, Principal, ToolAnnotations } from '../types.js';
import { scanListResponse } from './list-scan.js';

/**
 * List filtering: `tools/list`, `prompts/list`, `resources/list` and `resources/templates/list`
 * results are trimmed to what the principal may use, with the same `decide` that guards the calls, so
 * a hidden tool is also uncallable and a visible one callable. Works on JSON bodies and on SSE
 * streams; the gateway reuses it on proxied responses. Pagination cursors pass through untouched.
 */

/** The list requests of one HTTP exchange, by JSON-RPC id. */
export type PendingLists = ReadonlyMap<JsonRpcId, ListFamily>;

/** Collects the list requests among classified actions; `undefined` when there are none. */
export function pendingListsOf(actions: readonly McpAction[]): PendingLists | undefined {
  let lists: Map<JsonRpcId, ListFamily> | undefined;
  for (const action of actions) {
    if (action.kind === 'list' && action.list !== undefined && action.id !== undefined) {
      (lists ??= new Map()).set(action.id, action.list);
    }
  }
  return lists;
}

const ITEM_KEY: Record<ListFamily, { readonly member: string; readonly field: string }> = {
  tools: { member: 'tools', field: 'name' },
  prompts: { member: 'prompts', field: 'name' },
  resources: { member: 'resources', field: 'uri' },
  resourceTemplates: { member: 'resourceTemplates', field: 'uriTemplate' },
};

function actionForItem(family: ListFamily, target: string): McpAction {
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
 * Returns the result with only the items the principal may use. Items without a string name/URI
 * are dropped. Tool annotations in a `tools/list` result are learned first, so the filter and later
 * calls agree.
 */
export function filterListResult(
  family: ListFamily,
  result: Record<string, unknown>,
  principal: Principal,
  policy: Policy,
): Record<string, unknown> {
  const { member, field } = ITEM_KEY[family];
  const items = result[member];
  if (!Array.isArray(items)) return result;
  if (family === 'tools') policy.annotations.learn(items);
  const kept = items.filter((item: unknown) => {
    if (typeof item !== 'object' || item === null) return false;
    const target = (item as Record<string, unknown>)[field];
    return typeof target === 'string' && policy.decide(principal, actionForItem(family, target)).allow;
  });
  return kept.length === items.length ? result : { ...result, [member]: kept };
}

function filterMessage(message: unknown, lists: PendingLists, principal: Principal, policy: Policy): unknown {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return message;
  const m = message as Record<string, unknown>;
  const id = m['id'];
  if ((typeof id !== 'string' && typeof id !== 'number') || typeof m['result'] !== 'object' || m['result'] === null) {
    return message;
  }
  const family = lists.get(id);
  if (family === undefined) return message;
  const result = m['result'] as Record<string, unknown>;
  const filtered = filterListResult(family, result, principal, policy);
  return filtered === result ? message : { ...m, result: filtered };
}

const NOT_SCANNED = Symbol('not scanned');

/**
 * The fast path for the usual case (one list request, its response a single message): keep items by
 * slicing the original text, learning annotations from the scanned items. `NOT_SCANNED` when the text
 * is not of the shape the scanner accepts; the JSON path then decides.
 */
function filterByScan(text: string, lists: PendingLists, principal: Principal, policy: Policy): string | undefined | typeof NOT_SCANNED {
  const [id, family] = lists.entries().next().value as [JsonRpcId, ListFamily];
  const { member, field } = ITEM_KEY[family];
  const scanned = scanListResponse(text, member, field, family === 'tools');
  if (scanned === undefined) return NOT_SCANNED;
  if (scanned.id !== id) return undefined;
  if (family === 'tools') {
    const learned: { name: string; annotations?: ToolAnnotations }[] = [];
    try {
      for (const item of scanned.items) {
        if (item.key !== undefined) learned.push(item.annotations === undefined ? { name: item.key } : { name: item.key, annotations: JSON.parse(item.annotations) as ToolAnnotations });
      }
    } catch {
      return NOT_SCANNED;
    }
    policy.annotations.learn(learned);
  }
  const kept = scanned.items.filter((item) => item.key !== undefined && policy.decide(principal, actionForItem(family, item.key)).allow);
  if (kept.length === scanned.items.length) return undefined;
  return `${text.slice(0, scanned.arrayStart)}[${kept.map((item) => text.slice(item.start, item.end)).join(',')}]${text.slice(scanned.arrayEnd)}`;
}

/**
 * Filters a JSON response body (one message or a batch). Returns the new text, or `undefined` when
 * nothing changed (including a body that is not JSON: it is passed on as it came).
 */
export function filterJsonBody(text: string, lists: PendingLists, principal: Principal, policy: Policy): string | undefined {
  if (lists.size === 1) {
    const fast = filterByScan(text, lists, principal, policy);
    if (fast !== NOT_SCANNED) return fast;
  }
  return filterJsonBodyParsed(text, lists, principal, policy);
}

/** The general path: parse, filter, serialise. Exported for tests that compare it with the scan. */
export function filterJsonBodyParsed(text: string, lists: PendingLists, principal: Principal, policy: Policy): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (Array.isArray(parsed)) {
    let changed = false;
    const out = parsed.map((m) => {
      const f = filterMessage(m, lists, principal, policy);
      if (f !== m) changed = true;
      return f;
    });
    return changed ? JSON.stringify(out) : undefined;
  }
  const filtered = filterMessage(parsed, lists, principal, policy);
  return filtered === parsed ? undefined : JSON.stringify(filtered);
}

/**
 * An incremental SSE (text/event-stream) rewriter. Feed it decoded text as it arrives; it returns
 * what may be sent on at once. Events pass through as soon as their closing blank line arrives;
 * only `message` events carrying a response to a pending list request are rewritten.
 */
export class SseListFilter {
  readonly #lists: PendingLists;
  readonly #principal: Principal;
  readonly #policy: Policy;
  /** The unfinished line's text, in the chunks it came in (joined once a line end arrives). */
  #held: string[] = [];
  #lines: string[] = [];

  constructor(lists: PendingLists, principal: Principal, policy: Policy) {
    this.#lists = lists;
    this.#principal = principal;
    this.#policy = policy;
  }

  /** Accepts a chunk of the stream; returns the text to send on now. */
  push(chunk: string): string {
    const last = this.#held[this.#held.length - 1];
    // A long data line arrives in many chunks: hold them unjoined until one of them ends a line.
    if (last !== undefined && !last.endsWith('\r') && chunk.indexOf('\n') < 0 && chunk.indexOf('\r') < 0) {
      this.#held.push(chunk);
      return '';
    }
    const prefix = this.#held.length === 0 ? '' : this.#held.join('');
    this.#held = [];
    const text = prefix + chunk;
    let out = '';
    let start = 0;
    // The held text has no line end, except perhaps a final CR: resume the search there.
    let from = Math.max(0, prefix.length - 1);
    let lf = text.indexOf('\n', from);
    let cr = text.indexOf('\r', from);
    for (;;) {
      if (lf >= 0 && lf < from) lf = text.indexOf('\n', from);
      if (cr >= 0 && cr < from) cr = text.indexOf('\r', from);
      const end = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
      if (end < 0) break;
      const isCr = end === cr;
      if (isCr && end + 1 === text.length) break; // a CR at the end may be half of CRLF
      const line = text.slice(start, end);
      start = isCr && text.charCodeAt(end + 1) === 0x0a ? end + 2 : end + 1;
      from = start;
      if (line === '') out += this.#dispatch();
      else this.#lines.push(line);
    }
    if (start < text.length) this.#held.push(text.slice(start));
    return out;
  }

  /** Ends the stream: returns whatever was held back (an unterminated event is passed on as it was). */
  flush(): string {
    // A CR held back as a possible half of CRLF ends its line now that nothing follows.
    const head = this.#held[this.#held.length - 1]?.endsWith('\r') === true ? this.push('\n') : '';
    const rest = this.#lines.length > 0 ? `${this.#lines.join('\n')}\n` : '';
    const out = head + rest + this.#held.join('');
    this.#lines = [];
    this.#held = [];
    return out;
  }

  #dispatch(): string {
    const lines = this.#lines;
    this.#lines = [];
    let eventType = 'message';
    const data: string[] = [];
    for (const line of lines) {
      if (line.startsWith('data:')) data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      else if (line.startsWith('event:')) eventType = line.slice(6).trim();
    }
    if (eventType === 'message' && data.length > 0) {
      const filtered = filterJsonBody(data.join('\n'), this.#lists, this.#principal, this.#policy);
      if (filtered !== undefined) {
        const kept = lines.filter((l) => !l.startsWith('data:'));
        return `${[...kept, `data: ${filtered}`].join('\n')}\n\n`;
      }
    }
    return lines.length === 0 ? '\n' : `${lines.join('\n')}\n\n`;
  }
}
