import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { type AuditEvent, type AuditSink, type AuditWriter, redactArguments } from './audit/event.js';
import { type AuthenticationOutcome, authenticateFrom } from './authn/authenticate.js';
import { type ExtractOptions, extractCredential } from './authn/extract.js';
import type { AuthAttemptLimiter, RequestLimiter } from './authn/limiter.js';
import { type StaticTokenEntry, sha256Hex, staticTokens } from './authn/static-tokens.js';
import { Policy, type PolicyOptions } from './authz/policy.js';
import {
  type ErrorResponse,
  type ErrorResponseOptions,
  JsonRpcErrorCode,
  WardenError,
  jsonRpcErrorBody,
  toErrorResponse,
} from './errors.js';
import { createGuard, DEFAULT_MAX_BODY_BYTES, type GuardOptions } from './guard/guard.js';
import type { RequestView } from './http.js';
import { type ClassifiedBody, type ClassifyOptions, checkMcpHeaders, classifyBody, classifyParsed } from './mcp/classify.js';
import { type PendingLists, NO_LIST_REQUESTS, pendingListsOf } from './mcp/filter.js';
import type { Credential, CredentialVerifier, Decision, McpAction, Principal, SdkAuthInfo } from './types.js';

/** Everything the pipeline is configured with. Validated when {@link createWarden} is called. */
export interface WardenOptions extends GuardOptions, ExtractOptions, ErrorResponseOptions, ClassifyOptions {
  /** Credential verifiers, tried in order. */
  readonly verifiers?: readonly CredentialVerifier[];
  /** Shorthand for a {@link staticTokens} verifier, tried after `verifiers`. */
  readonly tokens?: readonly StaticTokenEntry[];
  /** The roles and patterns, or a {@link Policy} shared with other pipelines. */
  readonly policy: Policy | PolicyOptions;
  /** An `McpServer` (SDK v1 or v2) whose registered tools' annotations the policy should read. */
  readonly server?: object;
  /** Audit sinks and writers; each receives every event. */
  readonly audit?: AuditSink | AuditWriter | readonly (AuditSink | AuditWriter)[];
  /** The label put in audit events' `upstream` (the gateway names its upstreams; a server may name itself). */
  readonly upstream?: string;
  /**
   * Whether to record an action's arguments in its audit event (off for every action by default).
   * Recorded arguments have secret-looking fields redacted.
   */
  readonly recordArguments?: (action: McpAction) => boolean;
  /** Brute-force protection: consulted before verifying a credential, told about each refusal. */
  readonly authLimiter?: AuthAttemptLimiter;
  /** A request rate limit per principal: counted after authentication, before the body is read. */
  readonly requestLimiter?: RequestLimiter;
  /**
   * Put the caller's credential itself in `req.auth.token` for tool handlers, and leave the header
   * that carried it (`Authorization` or `X-API-Key`) on the request they see. Off by default:
   * handlers get `sha256:<first 16 hex digits>`, enough to correlate, useless to replay, and the
   * adapters remove that header from the request before the handler runs (SDK v1 hands handlers
   * the request's headers as `extra.requestInfo.headers`, SDK v2 the request as `ctx.http.req`).
   * @default false
   */
  readonly exposeCredentialToHandlers?: boolean;
}

/** The pipeline's verdict on one HTTP request. */
export type PipelineResult =
  | { readonly type: 'respond'; readonly response: ErrorResponse }
  | {
      readonly type: 'forward';
      readonly principal: Principal;
      /** The caller in the SDK's `AuthInfo` shape, for `req.auth`. */
      readonly authInfo: SdkAuthInfo;
      /** The parsed body (POST only), to hand on so nobody parses it again. */
      readonly body?: unknown;
      /** The exchange's list requests by id (`NO_LIST_REQUESTS` when none): its answer must be filtered. */
      readonly lists?: PendingLists;
      /**
       * The header that carried the credential, lower-case: adapters remove it from the request
       * before the handler sees it. Absent with `exposeCredentialToHandlers`.
       */
      readonly credentialHeader?: CredentialHeader;
    };

/** The request headers a credential is read from. */
export type CredentialHeader = 'authorization' | 'x-api-key';

/** How an adapter hands over the body: read it (bounded), or give what a body parser already parsed. */
export interface BodySource {
  /** Reads the raw body as UTF-8, refusing with `body_too_large` past `limit` bytes. */
  readonly read?: (limit: number) => Promise<string>;
  /** A body a framework's parser already produced (e.g. `express.json()`). */
  readonly parsed?: unknown;
}

/** The pipeline, ready to serve: what every adapter calls. */
export interface Warden {
  readonly policy: Policy;
  /** Runs guard → authn → classify → authz on one request. Never throws: failures become a `respond`. */
  handle(request: RequestView, body: BodySource): Promise<PipelineResult>;
  /** Maps any error to the answer of the status table (for adapters' own failures, e.g. body reading). */
  errorResponse(error: unknown): ErrorResponse;
}

interface RequestContext {
  readonly request: RequestView;
  /** Shared by the request's audit events; empty (and never read) when there are no sinks. */
  readonly requestId: string;
  readonly started: number;
}

/**
 * A `subscriptions/listen` following resources is audited with them: its target is the JSON array of
 * their URIs. A filter the classifier could not read (the `['']` mark) has none to show.
 */
function listenTarget(action: McpAction): { target?: string } {
  const uris = action.subscriptions;
  return uris === undefined || uris.includes('') ? {} : { target: JSON.stringify(uris) };
}

/**
 * Builds the pipeline (guard → authn → classify → authz) from options, validating them now so a
 * mistake surfaces at start-up with the option's name, not on the first request.
 */
export function createWarden(options: WardenOptions): Warden {
  if (typeof options !== 'object' || options === null) throw new TypeError('mcp-warden: options are required');
  if (options.policy === undefined) throw new TypeError('mcp-warden: options.policy is required (roles → permissions)');
  const guard = createGuard(options);
  // Duck-typed, not instanceof: a Policy built by another copy of this package works too.
  const policy = typeof (options.policy as Partial<Policy>).decide === 'function' ? (options.policy as Policy) : new Policy(options.policy as PolicyOptions);
  if (options.server !== undefined) policy.annotations.addServer(options.server);
  const verifiers = [...(options.verifiers ?? [])];
  if (options.tokens !== undefined) verifiers.push(staticTokens(options.tokens));
  if (verifiers.length === 0) {
    throw new TypeError('mcp-warden: configure at least one credential verifier (options.tokens or options.verifiers)');
  }
  if (options.invalidCredentialStatus !== undefined && options.invalidCredentialStatus !== 401 && options.invalidCredentialStatus !== 403) {
    throw new TypeError('mcp-warden: options.invalidCredentialStatus must be 401 or 403');
  }
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const configured: readonly (AuditSink | AuditWriter)[] =
    options.audit === undefined ? [] : Array.isArray(options.audit) ? options.audit : [options.audit as AuditSink | AuditWriter];
  const sinks: readonly AuditSink[] = configured.map((s) => (typeof s === 'function' ? s : (event: AuditEvent) => s.write(event)));
  const writers: readonly AuditWriter[] = configured.filter((s): s is AuditWriter => typeof s !== 'function');
  const recordArguments = options.recordArguments;
  const limiter = options.authLimiter;
  const requestLimiter = options.requestLimiter;
  const exposeCredential = options.exposeCredentialToHandlers === true;
  const upstream = options.upstream;

  function emit(ctx: RequestContext, fields: Omit<AuditEvent, 'time' | 'requestId' | 'latencyMicros' | 'clientAddress' | 'userAgent'>): void {
    if (sinks.length === 0) return;
    const userAgent = ctx.request.header('user-agent');
    // Object.assign and plain assignments, not spreads: this runs once per audited decision.
    const event = Object.assign({ time: new Date().toISOString(), requestId: ctx.requestId }, fields) as { -readonly [K in keyof AuditEvent]: AuditEvent[K] };
    if (upstream !== undefined) event.upstream = upstream;
    event.latencyMicros = Math.round((performance.now() - ctx.started) * 1000);
    if (ctx.request.remoteAddress !== undefined) event.clientAddress = ctx.request.remoteAddress;
    if (userAgent !== undefined) event.userAgent = userAgent;
    for (const sink of sinks) {
      try {
        sink(event);
      } catch {
        // A sink must not throw; one that does must not turn an answer into a 500 either.
      }
    }
  }

  function refuse(ctx: RequestContext, stage: string, error: unknown, extra: { principal?: Principal; credentialRef?: string } = {}): PipelineResult {
    const code = error instanceof WardenError ? error.code : 'internal';
    emit(ctx, {
      method: ctx.request.method,
      kind: 'request',
      decision: 'deny',
      rule: `${stage}:${code}`,
      reason: error instanceof Error ? error.message : 'internal error',
      ...(extra.principal === undefined ? {} : { principal: { id: extra.principal.id, kind: extra.principal.kind } }),
      ...(extra.credentialRef === undefined ? {} : { credentialRef: extra.credentialRef }),
    });
    return { type: 'respond', response: toErrorResponse(error, options) };
  }

  /**
   * Asks a limiter (brute force before authentication, request rate after it): undefined to go on,
   * else the refusal, 429 `code` with Retry-After, or 503 when the limiter fails (fail closed).
   */
  async function askLimiter(
    ctx: RequestContext,
    ask: () => number | undefined | Promise<number | undefined>,
    code: 'too_many_attempts' | 'rate_limited',
    message: string,
    principal?: Principal,
  ): Promise<PipelineResult | undefined> {
    const who = principal === undefined ? {} : { principal };
    let wait: number | undefined;
    try {
      wait = await ask();
    } catch (cause) {
      return refuse(ctx, 'ratelimit', new WardenError('verifier_unavailable', 'Service Unavailable: the rate limiter could not be reached', { cause, retryAfterSeconds: 1 }), who);
    }
    return wait === undefined ? undefined : refuse(ctx, 'ratelimit', new WardenError(code, message, { retryAfterSeconds: wait }), who);
  }

  /** The header to take off the request the handler sees (none when the credential is exposed anyway). */
  function headerOf(credential: Credential): CredentialHeader | undefined {
    if (exposeCredential) return undefined;
    return credential.source === 'api-key' ? 'x-api-key' : 'authorization';
  }

  function authInfoFor(principal: Principal, credential: Credential): SdkAuthInfo {
    // The fingerprint is a SHA-256: computed when a handler reads it, not for every request.
    let token: string | undefined;
    const info: SdkAuthInfo = {
      get token(): string {
        return (token ??= exposeCredential ? credential.value : `sha256:${sha256Hex(credential.value).slice(0, 16)}`);
      },
      set token(value: string) {
        token = value;
      },
      clientId: principal.clientId ?? principal.id,
      scopes: [...principal.scopes],
      extra: {
        principal: { id: principal.id, kind: principal.kind, subject: principal.subject, roles: [...principal.roles] },
        roles: [...principal.roles],
      },
    };
    if (principal.expiresAt !== undefined) info.expiresAt = principal.expiresAt;
    return info;
  }

  /**
   * Runs guard → authn → classify → authz. Not an async function: on the usual path (no limiter, a
   * verifier that answers synchronously) nothing waits but the body read, and the stages before it
   * run without a promise of their own. The answer is always a promise, rejected only by a bug.
   */
  function handle(request: RequestView, bodySource: BodySource): Promise<PipelineResult> {
    try {
      const result = start(request, bodySource);
      return result instanceof Promise ? result : Promise.resolve(result);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  function start(request: RequestView, bodySource: BodySource): PipelineResult | Promise<PipelineResult> {
    const ctx: RequestContext = sinks.length === 0 ? { request, requestId: '', started: 0 } : { request, requestId: request.requestId ?? randomUUID(), started: performance.now() };
    try {
      guard(request);
    } catch (error) {
      return refuse(ctx, 'guard', error);
    }
    for (const writer of writers) {
      if (!writer.accepting()) {
        return refuse(ctx, 'audit', new WardenError('audit_unavailable', 'Service Unavailable: the audit log cannot keep up', { retryAfterSeconds: 1 }));
      }
    }

    let credential: Credential | undefined;
    try {
      credential = extractCredential(request, options);
    } catch (error) {
      return refuse(ctx, 'authn', error);
    }
    if (credential === undefined) {
      return refuse(ctx, 'authn', new WardenError('credential_missing', 'Unauthorized: this MCP server requires a credential'));
    }
    if (limiter !== undefined) return authenticateLimited(ctx, bodySource, credential, limiter);
    // Awaited only when a verifier is really asynchronous: a cached or static credential costs no microtask.
    const outcome = authenticateFrom(credential, verifiers, 0);
    if (outcome instanceof Promise) return authenticatedLater(ctx, bodySource, credential, outcome);
    return authenticated(ctx, bodySource, credential, outcome);
  }

  /**
   * {@link authenticated} once an asynchronous verifier has answered. Awaits what follows rather than
   * returning its promise from a `then`, which would cost the adoption of one promise by another.
   */
  async function authenticatedLater(ctx: RequestContext, bodySource: BodySource, credential: Credential, pending: Promise<AuthenticationOutcome>): Promise<PipelineResult> {
    const next = authenticated(ctx, bodySource, credential, await pending);
    return next instanceof Promise ? await next : next;
  }

  /** Authentication behind the brute-force limiter: asked first, told about a refused credential. */
  async function authenticateLimited(ctx: RequestContext, bodySource: BodySource, credential: Credential, authLimiter: AuthAttemptLimiter): Promise<PipelineResult> {
    const address = ctx.request.remoteAddress;
    const attempt = address === undefined ? { credential } : { credential, address };
    const refused = await askLimiter(ctx, () => authLimiter.check(attempt), 'too_many_attempts', 'Too Many Requests: too many failed authentication attempts');
    if (refused !== undefined) return refused;
    let outcome = authenticateFrom(credential, verifiers, 0);
    if (outcome instanceof Promise) outcome = await outcome;
    if (!outcome.ok && outcome.error.code === 'credential_invalid') {
      try {
        await authLimiter.failed(attempt);
      } catch {
        // The refusal stands whether or not the limiter could count it.
      }
    }
    const next = authenticated(ctx, bodySource, credential, outcome);
    return next instanceof Promise ? await next : next;
  }

  function authenticated(ctx: RequestContext, bodySource: BodySource, credential: Credential, outcome: AuthenticationOutcome): PipelineResult | Promise<PipelineResult> {
    if (!outcome.ok) {
      return refuse(ctx, 'authn', outcome.error, outcome.credentialRef === undefined ? {} : { credentialRef: outcome.credentialRef });
    }
    const principal = outcome.principal;
    if (requestLimiter !== undefined) {
      return askLimiter(ctx, () => requestLimiter.take(principal), 'rate_limited', 'Too Many Requests: this caller has reached its request rate limit', principal).then(
        (refused) => refused ?? admitted(ctx, bodySource, credential, principal),
      );
    }
    return admitted(ctx, bodySource, credential, principal);
  }

  /** An authenticated request within its rate: a GET or DELETE goes on; a POST's body is read and decided. */
  function admitted(ctx: RequestContext, bodySource: BodySource, credential: Credential, principal: Principal): PipelineResult | Promise<PipelineResult> {
    const request = ctx.request;
    if (request.method !== 'POST') {
      emit(ctx, {
        principal: { id: principal.id, kind: principal.kind },
        method: request.method,
        kind: 'lifecycle',
        decision: 'allow',
        rule: 'builtin:lifecycle',
        reason: `${request.method} of the MCP endpoint is allowed to every authenticated caller`,
      });
      // A GET's stream may carry list answers (replayed to a resumed stream): filtered too.
      const credentialHeader = headerOf(credential);
      return request.method === 'GET'
        ? { type: 'forward', principal, authInfo: authInfoFor(principal, credential), lists: NO_LIST_REQUESTS, credentialHeader }
        : { type: 'forward', principal, authInfo: authInfoFor(principal, credential), credentialHeader };
    }
    if (bodySource.read === undefined) return decided(ctx, credential, principal, false, bodySource.parsed);
    let text: Promise<string>;
    try {
      // Promise.resolve: a reader may answer with a plain value or a foreign thenable.
      text = Promise.resolve(bodySource.read(maxBodyBytes));
    } catch (error) {
      return refuse(ctx, 'classify', error, { principal });
    }
    return text.then(
      (body) => decided(ctx, credential, principal, true, body),
      (error: unknown) => refuse(ctx, 'classify', error, { principal }),
    );
  }

  /** Classifies the body (its text when `read`, else what a parser made of it) and decides each of its actions. */
  function decided(ctx: RequestContext, credential: Credential, principal: Principal, read: boolean, body: unknown): PipelineResult {
    const request = ctx.request;
    let classified: ClassifiedBody;
    try {
      classified = read ? classifyBody(body as string, options) : classifyParsed(body, options);
      checkMcpHeaders(request, classified);
    } catch (error) {
      return refuse(ctx, 'classify', error, { principal });
    }

    const decisions: Decision[] = [];
    let denied = false;
    for (const action of classified.actions) {
      const decision = policy.decide(principal, action);
      decisions.push(decision);
      if (!decision.allow) denied = true;
      // The event is built only when someone receives it: this runs for every action.
      if (sinks.length === 0) continue;
      emit(ctx, {
        principal: { id: principal.id, kind: principal.kind },
        method: action.method,
        kind: action.kind,
        ...(action.target !== undefined ? { target: action.target } : listenTarget(action)),
        ...(action.arguments !== undefined && recordArguments?.(action) === true ? { arguments: redactArguments(action.arguments) } : {}),
        decision: decision.allow ? 'allow' : 'deny',
        rule: decision.rule,
        reason: decision.reason,
      });
    }
    if (denied) {
      const stepUp = stepUpScopes(decisions, principal, request.header('mcp-protocol-version'));
      if (stepUp !== undefined) {
        const first = decisions.find((d) => !d.allow && d.scopes !== undefined) as Decision;
        return {
          type: 'respond',
          response: toErrorResponse(
            new WardenError('insufficient_scope', `Forbidden: ${first.reason}`, {
              scope: stepUp,
              data: { rule: first.rule, ...(first.missingPermission === undefined ? {} : { permission: first.missingPermission }) },
              ...(classified.batch || classified.actions[0]?.id === undefined ? {} : { id: classified.actions[0].id }),
            }),
            options,
          ),
        };
      }
      return { type: 'respond', response: deniedResponse(classified, decisions) };
    }

    // Every POST's answer is filtered: a list answer can come back on the stream of another request
    // with its id (see NO_LIST_REQUESTS).
    const lists = pendingListsOf(classified.actions) ?? NO_LIST_REQUESTS;
    return { type: 'forward', principal, authInfo: authInfoFor(principal, credential), body: classified.body, lists, credentialHeader: headerOf(credential) };
  }

  return {
    policy,
    handle,
    errorResponse: (error: unknown) => toErrorResponse(error, options),
  };
}

/**
 * The scopes a 403 `insufficient_scope` challenge names, or undefined when no denied action can be
 * cured by a scope (then the denial is a JSON-RPC error). Revision 2026-07-28 asks for the scopes of
 * the current operation only (the client unions them with what it holds); earlier revisions
 * recommend adding the scopes already granted, since their clients (SDK v1) replace their scope set
 * with the challenge's. `offline_access` is never challenged (MCP authorization, "Refresh Tokens").
 */
function stepUpScopes(decisions: readonly Decision[], principal: Principal, protocolVersion: string | undefined): string[] | undefined {
  const needed = new Set<string>();
  for (const decision of decisions) {
    if (decision.allow) continue;
    if (decision.scopes === undefined || decision.scopes.length === 0) return undefined;
    for (const scope of decision.scopes) needed.add(scope);
  }
  if (needed.size === 0) return undefined;
  const scopes = protocolVersion !== undefined && protocolVersion >= '2026-07-28' ? [...needed] : [...new Set([...principal.scopes, ...needed])];
  return scopes.filter((s) => s !== 'offline_access');
}

/** The message of a denial: names the action and the permission it lacks. */
export function denialMessage(action: McpAction, decision: Decision): string {
  const permission = decision.missingPermission === undefined ? '' : ` (missing permission: ${decision.missingPermission})`;
  return `Forbidden: ${decision.reason}${permission}`;
}

/**
 * The answer to a body with a denied action: nothing is forwarded. A single request gets a JSON-RPC
 * error naming the missing permission. In a batch every request is answered with an error, so the
 * allowed half of a mixed batch never runs on the strength of the denied half being dropped.
 */
function deniedResponse(classified: ClassifiedBody, decisions: readonly Decision[]): ErrorResponse {
  const errors: string[] = [];
  classified.actions.forEach((action, i) => {
    const decision = decisions[i] as Decision;
    if (action.id === undefined || action.kind === 'response') return;
    if (!decision.allow) {
      errors.push(
        jsonRpcErrorBody(action.id, JsonRpcErrorCode.Forbidden, denialMessage(action, decision), {
          rule: decision.rule,
          ...(decision.missingPermission === undefined ? {} : { permission: decision.missingPermission }),
        }),
      );
    } else {
      errors.push(
        jsonRpcErrorBody(action.id, JsonRpcErrorCode.Forbidden, 'Forbidden: not executed because another request in the same batch was denied'),
      );
    }
  });
  const headers = { 'content-type': 'application/json' };
  if (errors.length === 0) {
    // Only notifications were denied: there is no id to answer, so refuse at the HTTP level.
    const first = classified.actions.findIndex((_, i) => !(decisions[i] as Decision).allow);
    const action = classified.actions[first] as McpAction;
    const decision = decisions[first] as Decision;
    return { status: 403, headers, body: jsonRpcErrorBody(null, JsonRpcErrorCode.Forbidden, denialMessage(action, decision)) };
  }
  return { status: 200, headers, body: classified.batch ? `[${errors.join(',')}]` : (errors[0] as string) };
}
