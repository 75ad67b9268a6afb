import type { ToolAnnotations } from '../types.js';

/**
 * Where the policy learns what a tool does. Annotations come, in order of precedence, from the
 * operator's `toolAnnotations` option, from `tools/list` results the filter has seen, and from an MCP
 * server object the adapter was given. A tool nobody described takes the spec's defaults
 * (`readOnlyHint: false`, `destructiveHint: true`), so it needs the `delete` verb: unknown means careful.
 */
export class ToolAnnotationRegistry {
  readonly #configured = new Map<string, ToolAnnotations>();
  readonly #learned = new Map<string, ToolAnnotations>();
  /** The JSON text each learned entry was parsed from (null: listed without annotations), see {@link learnTexts}. */
  readonly #learnedText = new Map<string, string | null>();
  #servers: ((name: string) => ToolAnnotations | undefined)[] = [];

  constructor(configured: Readonly<Record<string, ToolAnnotations>> = {}) {
    for (const [name, annotations] of Object.entries(configured)) this.#configured.set(name, annotations);
  }

  /** The annotations of a tool, or `undefined` when nothing describes it. */
  get(name: string): ToolAnnotations | undefined {
    const configured = this.#configured.get(name);
    if (configured !== undefined) return configured;
    const learned = this.#learned.get(name);
    if (learned !== undefined) return learned;
    for (const lookup of this.#servers) {
      const found = lookup(name);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  /** Bumped whenever a learned entry changes; with `#lastList`, lets a list learned before be skipped. */
  #version = 0;
  #lastList: object | undefined;
  #lastVersion = -1;

  /** Records the annotations of the tools of a `tools/list` result (the tool objects as listed). */
  learn(tools: readonly unknown[]): void {
    this.#version++;
    for (const tool of tools) {
      if (typeof tool !== 'object' || tool === null) continue;
      const { name, annotations } = tool as { name?: unknown; annotations?: unknown };
      if (typeof name !== 'string') continue;
      this.#learned.set(name, sanitise(annotations));
      this.#learnedText.delete(name);
    }
  }

  /**
   * Records listed tools' annotations from their JSON text (`annotations` absent: the tool has none),
   * as the list filter's scan finds them. Text equal to what was learned last for that name is not
   * parsed again: a big list seen again costs a map lookup per tool.
   * @throws SyntaxError when any text is not JSON; nothing is learned then
   */
  learnTexts(tools: readonly { readonly name: string; readonly annotations?: string | undefined }[]): void {
    // By name, the last listing winning, as in learn(); parsed before anything is recorded.
    const changed = new Map<string, readonly [string | undefined, unknown]>();
    for (const { name, annotations } of tools) {
      // One lookup per tool in the usual case: nothing changed since the last listing.
      if (this.#learnedText.get(name) === (annotations ?? null) && (changed.size === 0 || !changed.has(name))) continue;
      changed.set(name, [annotations, annotations === undefined ? undefined : JSON.parse(annotations)]);
    }
    if (changed.size > 0) this.#version++;
    for (const [name, [text, parsed]] of changed) {
      this.#learned.set(name, sanitise(parsed));
      this.#learnedText.set(name, text ?? null);
    }
  }

  /**
   * {@link learnTexts} for a list that may have been learned just before: `list` identifies it (an
   * immutable object standing for the tools' texts, such as a remembered scan's items), and when it
   * is the list learned last and nothing was learned since, there is nothing to do. `tools` is only
   * called when there is.
   */
  learnTextsOf(list: object, tools: () => readonly { readonly name: string; readonly annotations?: string | undefined }[]): void {
    if (list === this.#lastList && this.#version === this.#lastVersion) return;
    this.learnTexts(tools());
    this.#lastList = list;
    this.#lastVersion = this.#version;
  }


  /**
   * Reads annotations from an `McpServer` of the official SDK (v1 `@modelcontextprotocol/sdk` or v2
   * `@modelcontextprotocol/server`), looked up on every call so tools registered later count too.
   * Both keep registered tools in `_registeredTools` (name → `{ annotations, enabled }`).
   */
  /**
   * A number that changes whenever an answer of {@link get} may have: `undefined` when a server
   * object is read live (its tools can change without the registry knowing).
   */
  get stamp(): number | undefined {
    return this.#servers.length === 0 ? this.#version : undefined;
  }

  addServer(server: object): void {
    this.#version++;
    const holder = server as { _registeredTools?: Record<string, { annotations?: unknown } | undefined> };
    if (typeof holder._registeredTools !== 'object' || holder._registeredTools === null) {
      throw new TypeError('server: expected an McpServer of @modelcontextprotocol/sdk or @modelcontextprotocol/server');
    }
    this.#servers.push((name) => {
      const tools = holder._registeredTools;
      if (tools === undefined || !Object.hasOwn(tools, name)) return undefined;
      return sanitise(tools[name]?.annotations);
    });
  }
}

const NO_ANNOTATIONS: ToolAnnotations = Object.freeze({});

/** The four hints of an annotations object, those that are booleans (read field by field: this runs per call). */
function sanitise(value: unknown): ToolAnnotations {
  if (typeof value !== 'object' || value === null) return NO_ANNOTATIONS;
  const v = value as Record<string, unknown>;
  const readOnly = v['readOnlyHint'];
  const destructive = v['destructiveHint'];
  const idempotent = v['idempotentHint'];
  const openWorld = v['openWorldHint'];
  const out: { -readonly [K in keyof ToolAnnotations]: ToolAnnotations[K] } = {};
  if (typeof readOnly === 'boolean') out.readOnlyHint = readOnly;
  if (typeof destructive === 'boolean') out.destructiveHint = destructive;
  if (typeof idempotent === 'boolean') out.idempotentHint = idempotent;
  if (typeof openWorld === 'boolean') out.openWorldHint = openWorld;
  return out;
}
