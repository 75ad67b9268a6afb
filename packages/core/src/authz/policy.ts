import type { Decision, McpAction, Principal, ToolAnnotations, Verb } from '../types.js';
import { ToolAnnotationRegistry } from './annotations.js';
import { type CompiledPattern, compilePattern, foldForComparison, unsafeNameReason, unsafeUriReason, uriVariants } from './patterns.js';

/** Allow and deny globs for one family of targets. */
export interface PatternRules {
  readonly allow?: readonly string[];
  readonly deny?: readonly string[];
}

/** What a role may do. */
export interface RoleDefinition {
  /**
   * Annotation-aware verbs. `read`: resources, prompts and tools with `readOnlyHint: true`; `write`
   * adds tools that are not read-only but declare `destructiveHint: false`; `delete` adds every other
   * tool (destructive, or not annotated: the spec's defaults). Each verb includes the ones before it.
   */
  readonly verbs?: readonly Verb[];
  /** Tool names allowed or denied by glob, whatever their annotations. */
  readonly tools?: PatternRules;
  /** Resource URIs (and URI templates) allowed or denied by glob. */
  readonly resources?: PatternRules;
  /** Prompt names allowed or denied by glob. */
  readonly prompts?: PatternRules;
  /** Other JSON-RPC methods (extensions, `tasks/*` beyond `read`) allowed or denied by glob. */
  readonly methods?: PatternRules;
}

/** Options of {@link Policy}. */
export interface PolicyOptions {
  /** Role name → definition; a list of verbs is shorthand for `{ verbs }`. */
  readonly roles: Readonly<Record<string, RoleDefinition | readonly Verb[]>>;
  /** Deny patterns for every principal, whatever its roles. */
  readonly deny?: {
    readonly tools?: readonly string[];
    readonly resources?: readonly string[];
    readonly prompts?: readonly string[];
    readonly methods?: readonly string[];
  };
  /** Annotations that override what servers declare, by tool name. */
  readonly toolAnnotations?: Readonly<Record<string, ToolAnnotations>>;
  /**
   * OAuth scope → the roles whose permissions it grants. A principal whose credential is
   * scope-limited (`Principal.scopeLimited`, OAuth access tokens) may do what its roles AND its
   * scopes allow. Scopes not listed here grant nothing. The order of the entries is the order in
   * which a step-up names a scope that would allow a refused action.
   */
  readonly scopes?: Readonly<Record<string, readonly string[]>>;
}

type Family = 'tools' | 'resources' | 'prompts' | 'methods';

interface CompiledRules {
  readonly allow: readonly CompiledPattern[];
  readonly deny: readonly CompiledPattern[];
}

interface CompiledRole {
  readonly name: string;
  /** 0 none, 1 read, 2 write, 3 delete. */
  readonly rank: number;
  readonly verb: Verb | undefined;
  readonly rules: Readonly<Record<Family, CompiledRules>>;
}

const VERB_RANK: Record<Verb, number> = { read: 1, write: 2, delete: 3 };
const RANK_VERB: readonly (Verb | undefined)[] = [undefined, 'read', 'write', 'delete'];
const FAMILIES: readonly Family[] = ['tools', 'resources', 'prompts', 'methods'];
const FAMILY_NOUN: Record<Family, string> = { tools: 'tool', resources: 'resource', prompts: 'prompt', methods: 'method' };

/** The verb a tool needs, from its annotations (MCP spec `ToolAnnotations` defaults when absent). */
export function requiredVerb(annotations: ToolAnnotations | undefined): Verb {
  if (annotations?.readOnlyHint === true) return 'read';
  if (annotations?.destructiveHint === false) return 'write';
  return 'delete';
}

function compileRules(rules: PatternRules | undefined, where: string): CompiledRules {
  return {
    allow: (rules?.allow ?? []).map((p, i) => compilePattern(p, `${where}.allow[${i}]`)),
    deny: (rules?.deny ?? []).map((p, i) => compilePattern(p, `${where}.deny[${i}]`)),
  };
}

function allow(rule: string, reason: string): Decision {
  return { allow: true, rule, reason };
}

function deny(rule: string, reason: string, missingPermission?: string): Decision {
  return missingPermission === undefined ? { allow: false, rule, reason } : { allow: false, rule, reason, missingPermission };
}

/**
 * How many decisions {@link Policy} remembers in all (past it, it starts afresh), how long a method
 * and target may be together for their decision to be remembered (a decision repeats them in its
 * reason, and requests choose them), and how many sets of scopes it remembers the roles of.
 */
const DECISION_MEMO_LIMIT = 8192;
const DECISION_MEMO_NAME_LIMIT = 512;
const NAME_SETS_LIMIT = 256;

/**
 * A key for a non-empty list of role or scope names, by content: one name is its own key, several
 * are joined by NUL (so hold at least one). Undefined when a name holds a NUL itself, as the key
 * could then be another list's.
 */
function namesKey(names: readonly string[]): string | undefined {
  for (const name of names) if (typeof name !== 'string' || name.includes('\u0000')) return undefined;
  return names.length === 1 ? names[0] : names.join('\u0000');
}

/** What a target other than a URI is tested as, beside itself: nothing. */
const NO_VARIANTS: readonly string[] = Object.freeze([]);

/**
 * Roles → permissions, per MCP action. Default deny; a deny rule wins over any allow; every decision
 * names the rule that made it and says why in words.
 */
export class Policy {
  readonly annotations: ToolAnnotationRegistry;
  readonly #roles = new Map<string, CompiledRole>();
  readonly #globalDeny: Readonly<Record<Family, readonly CompiledPattern[]>>;
  readonly #scopes: ReadonlyMap<string, readonly string[]>;
  /**
   * Decisions already taken, per set of roles (by the names, not the array: principals verified
   * afresh on every request bring new arrays) and per action: all that #decideFor reads of it (kind,
   * method, target) and, for a tool, the verb its annotations require now (looked up on every call,
   * so a changed annotation is decided afresh). The rest of what it reads is fixed when the policy
   * is built. Decisions are frozen, as they are shared.
   */
  readonly #memo = new Map<string, Map<string, Decision>>();
  /** The same for no roles at all. */
  readonly #memoNoRoles = new Map<string, Decision>();
  /** Decisions in #memo and #memoNoRoles together. */
  #remembered = 0;
  /** The roles each set of scopes grants. */
  readonly #grantedRoles = new Map<string, readonly string[]>();

  constructor(options: PolicyOptions) {
    if (typeof options !== 'object' || options === null || typeof options.roles !== 'object' || options.roles === null) {
      throw new TypeError('policy.roles must be an object of role name → verbs or role definition');
    }
    for (const [name, raw] of Object.entries(options.roles)) {
      const where = `policy.roles.${name}`;
      const definition: RoleDefinition = Array.isArray(raw) ? { verbs: raw as readonly Verb[] } : (raw as RoleDefinition);
      let rank = 0;
      for (const verb of definition.verbs ?? []) {
        if (!Object.hasOwn(VERB_RANK, verb)) {
          throw new TypeError(`${where}.verbs: "${String(verb)}" is not one of read, write, delete`);
        }
        rank = Math.max(rank, VERB_RANK[verb]);
      }
      const rules = {} as Record<Family, CompiledRules>;
      for (const family of FAMILIES) rules[family] = compileRules(definition[family], `${where}.${family}`);
      this.#roles.set(name, { name, rank, verb: RANK_VERB[rank], rules });
    }
    const globalDeny = {} as Record<Family, readonly CompiledPattern[]>;
    for (const family of FAMILIES) {
      globalDeny[family] = (options.deny?.[family] ?? []).map((p, i) => compilePattern(p, `policy.deny.${family}[${i}]`));
    }
    this.#globalDeny = globalDeny;
    const scopes = new Map<string, readonly string[]>();
    for (const [scope, roles] of Object.entries(options.scopes ?? {})) {
      if (!Array.isArray(roles)) throw new TypeError(`policy.scopes.${scope} must be a list of role names`);
      for (const role of roles as readonly unknown[]) {
        if (typeof role !== 'string' || !this.#roles.has(role)) {
          throw new TypeError(`policy.scopes.${scope}: "${String(role)}" is not a role this policy defines (${[...this.#roles.keys()].join(', ') || 'none'})`);
        }
      }
      scopes.set(scope, Object.freeze([...(roles as readonly string[])]));
    }
    this.#scopes = scopes;
    this.annotations = new ToolAnnotationRegistry(options.toolAnnotations);
  }

  /** The role names this policy defines. */
  get roleNames(): readonly string[] {
    return [...this.#roles.keys()];
  }

  /** The scopes this policy maps to roles, in their configured order. */
  get scopeNames(): readonly string[] {
    return [...this.#scopes.keys()];
  }

  /**
   * Decides one action for one principal. Pure apart from reading the annotation registry.
   *
   * For a scope-limited principal (an OAuth access token) an action must be allowed by its roles and
   * by the roles its scopes grant. When only the scopes fall short, the deny carries `scopes`: the
   * first configured scope that would allow the action (a step-up: RFC 6750 §3.1
   * `insufficient_scope`; MCP authorization 2025-11-25 "Runtime Insufficient Scope Errors").
   *
   * List filtering remembers these answers by what this reads of the principal (roles, scopes,
   * `scopeLimited`) and of the tool (its annotations): reading anything more here means adding it
   * to the key in mcp/list-decisions.ts.
   */
  decide(principal: Principal, action: McpAction): Decision {
    const byRoles = this.#decideRemembered(principal.roles, action);
    if (!byRoles.allow || principal.scopeLimited !== true) return byRoles;
    if ((action.kind === 'lifecycle' && !followsSomething(action)) || action.kind === 'notification' || action.kind === 'response' || action.kind === 'list') return byRoles;
    const scopesKey = principal.scopes.length === 0 ? undefined : namesKey(principal.scopes);
    let granted = scopesKey === undefined ? undefined : this.#grantedRoles.get(scopesKey);
    if (granted === undefined) {
      const roles: string[] = [];
      for (const scope of principal.scopes) roles.push(...(this.#scopes.get(scope) ?? []));
      granted = Object.freeze(roles);
      if (scopesKey !== undefined) {
        if (this.#grantedRoles.size >= NAME_SETS_LIMIT) this.#grantedRoles.clear();
        this.#grantedRoles.set(scopesKey, granted);
      }
    }
    if (granted.length > 0 && this.#decideRemembered(granted, action).allow) return byRoles;
    const held = principal.scopes.length === 0 ? 'the token carries no scope' : `the token's scopes (${principal.scopes.join(' ')}) do not allow it`;
    const what = describeAction(action);
    for (const [scope, roles] of this.#scopes) {
      if (this.#decideRemembered(roles, action).allow) {
        return { allow: false, rule: 'scope:insufficient', reason: `${what}: ${held}; scope ${scope} would`, missingPermission: `scope:${scope}`, scopes: [scope] };
      }
    }
    return deny('scope:none', `${what}: ${held}, and no configured scope would`, 'scope');
  }

  #decideRemembered(roleNames: readonly string[], action: McpAction): Decision {
    const rolesKey = roleNames.length === 0 ? '' : namesKey(roleNames);
    // A listen's URIs are not in the key (nor worth remembering: one decision per open stream).
    if (rolesKey === undefined || (action.kind === 'lifecycle' && followsSomething(action)) || action.method.length + (action.target?.length ?? 0) > DECISION_MEMO_NAME_LIMIT) {
      return this.#decideFor(roleNames, action);
    }
    const verb = action.kind === 'tool' ? requiredVerb(this.annotations.get(action.target ?? '')) : '';
    // The method is length-prefixed and comes last but for the target, so no two actions share a key.
    const key = `${action.kind} ${verb} ${action.method.length} ${action.method}${action.target === undefined ? '' : `\u0000${action.target}`}`;
    let memo = roleNames.length === 0 ? this.#memoNoRoles : this.#memo.get(rolesKey);
    let decision = memo?.get(key);
    if (decision === undefined) {
      decision = Object.freeze(this.#decideFor(roleNames, action));
      // Names come from requests: past the limit, start afresh rather than grow.
      if (this.#remembered >= DECISION_MEMO_LIMIT) {
        this.#memo.clear();
        this.#memoNoRoles.clear();
        this.#remembered = 0;
        memo = roleNames.length === 0 ? this.#memoNoRoles : undefined;
      }
      if (memo === undefined) {
        memo = new Map<string, Decision>();
        this.#memo.set(rolesKey, memo);
      }
      memo.set(key, decision);
      this.#remembered++;
    }
    return decision;
  }

  #decideFor(roleNames: readonly string[], action: McpAction): Decision {
    const roles: CompiledRole[] = [];
    for (const name of roleNames) {
      const role = this.#roles.get(name);
      if (role !== undefined) roles.push(role);
    }
    const methodDenied = this.#denied('methods', action.method, roles);
    if (methodDenied !== undefined) return methodDenied;

    switch (action.kind) {
      case 'lifecycle':
        if (followsSomething(action)) return this.#decideListen(action, roles);
        return allow(`builtin:${action.kind}`, `${action.method} is part of the protocol and allowed to every authenticated caller`);
      case 'notification':
      case 'response':
        return allow(`builtin:${action.kind}`, `${action.method} is part of the protocol and allowed to every authenticated caller`);
      case 'list':
        return allow('builtin:list', `${action.method} is allowed; its result is filtered to what the caller may use`);
      case 'tool':
        return this.#decideTarget('tools', action.target, roles, requiredVerb(this.annotations.get(action.target ?? '')));
      case 'prompt':
        return this.#decideTarget('prompts', action.target, roles, 'read');
      case 'resource':
        return this.#decideTarget('resources', action.target, roles, 'read');
      case 'task': {
        const role = roles.find((r) => r.rank >= 1);
        if (role !== undefined) return allow(`role:${role.name} verb:read`, `${action.method} is allowed by the read verb of role ${role.name}`);
        return this.#decideByMethodPattern(action.method, roles, 'read');
      }
      case 'other':
        return this.#decideByMethodPattern(action.method, roles, `methods:${action.method}`);
    }
  }

  /**
   * A `subscriptions/listen` following resources or tasks: allowed when each resource could be
   * subscribed to with `resources/subscribe` (the method's deny patterns, then a read of the URI) and,
   * for tasks, `tasks/get` would be allowed, so the 2026-07-28 way of following something reveals no
   * more than the 2025 one. The first refusal refuses the whole request.
   */
  #decideListen(action: McpAction, roles: readonly CompiledRole[]): Decision {
    const refused = (decision: Decision): Decision => ({ ...decision, reason: `subscriptions/listen: ${decision.reason}` });
    const uris = action.subscriptions ?? [];
    if (uris.includes('')) {
      return deny(
        'builtin:invalid-target',
        'subscriptions/listen refused: its notifications filter is not one the gateway can read (resourceSubscriptions must be an array of at most 1,000 URIs; unknown fields are refused)',
      );
    }
    if (uris.length > 0) {
      const methodDenied = this.#denied('methods', 'resources/subscribe', roles);
      if (methodDenied !== undefined) return refused(methodDenied);
      for (const uri of uris) {
        const decision = this.#decideTarget('resources', uri, roles, 'read');
        if (!decision.allow) return refused(decision);
      }
    }
    if (action.listensToTasks === true) {
      const methodDenied = this.#denied('methods', 'tasks/get', roles);
      if (methodDenied !== undefined) return refused(methodDenied);
      if (!roles.some((r) => r.rank >= 1)) {
        const decision = this.#decideByMethodPattern('tasks/get', roles, 'read');
        if (!decision.allow) return refused(decision);
      }
    }
    return allow('builtin:lifecycle', `subscriptions/listen is allowed: the caller may read each of its ${uris.length} resources${action.listensToTasks === true ? ' and its tasks' : ''}`);
  }

  #decideByMethodPattern(method: string, roles: readonly CompiledRole[], missing: string): Decision {
    for (const role of roles) {
      const match = role.rules.methods.allow.find((p) => p.exact.test(method));
      if (match !== undefined) return allow(`role:${role.name} methods.allow "${match.source}"`, `method ${method} is allowed by role ${role.name}`);
    }
    return deny('default-deny', `method ${method} is not allowed: no role of the caller allows it`, missing);
  }

  /** The first deny rule (global, then per role) that matches, as a decision. */
  #denied(family: Family, target: string, roles: readonly CompiledRole[]): Decision | undefined {
    let folded: string | undefined;
    // A URI is also tested as a server may read it (`uriVariants`): `%73ecret`, `file://localhost/`,
    // `file:/srv` and `a//secret` must not slip past a rule written for `file:///srv/secret`.
    // Worked out once, and only when a pattern is tried.
    let variants: readonly string[] | undefined;
    const matches = (p: CompiledPattern): boolean =>
      p.exact.test(target) ||
      p.folded.test((folded ??= foldForComparison(target))) ||
      (variants ??= family === 'resources' ? uriVariants(target) : NO_VARIANTS).some((v) => p.exact.test(v) || p.folded.test(foldForComparison(v)));
    const noun = FAMILY_NOUN[family];
    const global = this.#globalDeny[family].find(matches);
    if (global !== undefined) {
      return deny(`policy.deny.${family} "${global.source}"`, `${noun} ${JSON.stringify(target)} is denied to everyone by pattern "${global.source}"`);
    }
    for (const role of roles) {
      const match = role.rules[family].deny.find(matches);
      if (match !== undefined) {
        return deny(`role:${role.name} ${family}.deny "${match.source}"`, `${noun} ${JSON.stringify(target)} is denied to role ${role.name} by pattern "${match.source}"`);
      }
    }
    return undefined;
  }

  #decideTarget(family: 'tools' | 'prompts' | 'resources', target: string | undefined, roles: readonly CompiledRole[], verb: Verb): Decision {
    const noun = FAMILY_NOUN[family];
    if (target === undefined) return deny('builtin:invalid-target', `the request names no ${noun}`);
    const unsafe = family === 'resources' ? unsafeUriReason(target) : unsafeNameReason(target);
    if (unsafe !== undefined) return deny('builtin:invalid-target', `${noun} refused: ${unsafe}`);
    const denied = this.#denied(family, target, roles);
    if (denied !== undefined) return denied;
    for (const role of roles) {
      const match = role.rules[family].allow.find((p) => p.exact.test(target));
      if (match !== undefined) {
        return allow(`role:${role.name} ${family}.allow "${match.source}"`, `${noun} ${JSON.stringify(target)} is allowed to role ${role.name} by pattern "${match.source}"`);
      }
    }
    const needed = VERB_RANK[verb];
    const granting = roles.find((r) => r.rank >= needed);
    const what = family === 'tools' ? `tool ${JSON.stringify(target)} (${describeVerb(verb)})` : `${noun} ${JSON.stringify(target)}`;
    if (granting !== undefined) {
      return allow(`role:${granting.name} verb:${granting.verb ?? verb}`, `${what} needs "${verb}", which role ${granting.name} grants`);
    }
    const held = roles.length === 0 ? 'the caller has no role this policy knows' : `the caller's roles (${roles.map((r) => r.name).join(', ')}) do not grant it`;
    return deny('default-deny', `${what} needs the "${verb}" permission; ${held}`, verb);
  }
}

/** Whether a `subscriptions/listen` follows resources or tasks (and so is decided as reads of them). */
function followsSomething(action: McpAction): boolean {
  return action.subscriptions !== undefined || action.listensToTasks === true;
}

function describeAction(action: McpAction): string {
  if (action.kind === 'tool') return `tool ${JSON.stringify(action.target ?? '')}`;
  if (action.kind === 'prompt') return `prompt ${JSON.stringify(action.target ?? '')}`;
  if (action.kind === 'resource') return `resource ${JSON.stringify(action.target ?? '')}`;
  return `method ${action.method}`;
}

function describeVerb(verb: Verb): string {
  if (verb === 'read') return 'read-only';
  if (verb === 'write') return 'not read-only, not destructive';
  return 'destructive or not annotated';
}
