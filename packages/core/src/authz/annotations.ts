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

  /** Records the annotations of the tools of a `tools/list` result (the tool objects as listed). */
  learn(tools: readonly unknown[]): void {
    for (const tool of tools) {
      if (typeof tool !== 'object' || tool === null) continue;
      const { name, annotations } = tool as { name?: unknown; annotations?: unknown };
      if (typeof name !== 'string') continue;
      this.#learned.set(name, sanitise(annotations));
    }
  }

  /**
   * Reads annotations from an `McpServer` of the official SDK (v1 `@modelcontextprotocol/sdk` or v2
   * `@modelcontextprotocol/server`), looked up on every call so tools registered later count too.
   * Both keep registered tools in `_registeredTools` (name → `{ annotations, enabled }`).
   */
  addServer(server: object): void {
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

function sanitise(value: unknown): ToolAnnotations {
  if (typeof value !== 'object' || value === null) return {};
  const v = value as Record<string, unknown>;
  const out: { -readonly [K in keyof ToolAnnotations]: ToolAnnotations[K] } = {};
  for (const key of ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint'] as const) {
    if (typeof v[key] === 'boolean') out[key] = v[key];
  }
  return out;
}
