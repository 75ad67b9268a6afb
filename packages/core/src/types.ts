/**
 * Types shared by every stage of the pipeline. Stages depend on these and on `errors.ts`, never on
 * each other's internals.
 */

/** Who is calling, as established by a credential verifier. */
export interface Principal {
  /** Stable id of the principal (a token's configured id, an API key id, a JWT `sub`…). Safe to log. */
  readonly id: string;
  /** Which kind of credential established it: `static-token`, `api-key`, `jwt`, `introspection`… */
  readonly kind: string;
  /** The subject the principal acts for (a user or a machine client). */
  readonly subject: string;
  /** mcp-warden roles, resolved by the policy into permissions. */
  readonly roles: readonly string[];
  /** OAuth scopes carried by the credential (empty for static tokens). */
  readonly scopes: readonly string[];
  /** Claims of the credential, minus anything secret. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** Expiry in seconds since the epoch, when the credential has one. */
  readonly expiresAt?: number;
  /** OAuth client id, when the credential names one. */
  readonly clientId?: string;
  /**
   * True when the credential's `scopes` bound what it may do (OAuth access tokens): the policy then
   * allows only what both the roles and the scopes allow. False or absent for static tokens and keys.
   */
  readonly scopeLimited?: boolean;
}

/** How a credential arrived. */
export type CredentialSource = 'bearer' | 'api-key' | 'raw-authorization';

/** One credential extracted from a request. `value` is secret: never log it. */
export interface Credential {
  readonly source: CredentialSource;
  readonly value: string;
}

/** What a verifier concluded about a credential it recognises. */
export type VerificationResult =
  | { readonly ok: true; readonly principal: Principal }
  | {
      readonly ok: false;
      /** Why it was refused; shown to the caller, so never include the credential. */
      readonly reason: 'unknown' | 'expired' | 'revoked' | 'not_yet_valid' | 'wrong_audience' | 'invalid';
      readonly description: string;
      /** A safe reference for logs (key id, hash prefix). */
      readonly credentialRef?: string;
    };

/**
 * Turns a credential into a principal. Verifiers are tried in order; a verifier answers `undefined`
 * for a credential it does not recognise (another verifier may), a result otherwise. A verifier that
 * cannot reach its backing store throws; the pipeline then fails closed with 503.
 */
export interface CredentialVerifier {
  /** Name used in audit events and logs. */
  readonly name: string;
  verify(credential: Credential): VerificationResult | undefined | Promise<VerificationResult | undefined>;
}

/** The kinds of MCP actions the policy decides on. */
export type ActionKind =
  /** `tools/call`. */
  | 'tool'
  /** `resources/read`, `resources/subscribe`, `resources/unsubscribe`, and completions of a resource template. */
  | 'resource'
  /** `prompts/get` and completions of a prompt argument. */
  | 'prompt'
  /** `tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`: filtered, never refused. */
  | 'list'
  /**
   * `initialize`, `server/discover`, `ping`, `logging/setLevel`, `subscriptions/listen`, the GET stream
   * and DELETE of a session; a listen that follows resources or tasks is decided as their reads.
   */
  | 'lifecycle'
  /** Client-to-server notifications (`notifications/initialized`, `…/cancelled`, `…/progress`, `…/roots/list_changed`). */
  | 'notification'
  /** Client responses to server requests (sampling, elicitation, roots). */
  | 'response'
  /** `tasks/*`: state of tool calls the principal started. */
  | 'task'
  /** Any other method: allowed only by an explicit `methods` pattern. */
  | 'other';

/** The list families that `list` actions and filtering know. */
export type ListFamily = 'tools' | 'prompts' | 'resources' | 'resourceTemplates';

/** A JSON-RPC id. */
export type JsonRpcId = string | number;

/** One MCP message, named for the policy. */
export interface McpAction {
  /** The JSON-RPC method, or `response` for a client's response, `GET`/`DELETE` for stream operations. */
  readonly method: string;
  readonly kind: ActionKind;
  /** The request id; absent for notifications and for a request method sent without one (decided as that request). */
  readonly id?: JsonRpcId;
  /** Tool or prompt name, resource URI, or URI template. */
  readonly target?: string;
  /** For `resource` kind: whether the target is a URI template rather than a URI. */
  readonly template?: boolean;
  /** For `list` kind: which list. */
  readonly list?: ListFamily;
  /** Tool or prompt arguments, when the message carries them. */
  readonly arguments?: Readonly<Record<string, unknown>>;
  /**
   * For a 2026-07-28 `subscriptions/listen`: the resource URIs whose `notifications/resources/updated`
   * it asks for (`params.notifications.resourceSubscriptions`). Each is decided as a
   * `resources/subscribe` of that URI would be (the method's deny patterns, then the resource's); one
   * refused refuses the request. `['']` stands for a filter the gateway cannot fully read (not an
   * object, no array of strings, over 1,000 URIs, an unknown field): refused.
   */
  readonly subscriptions?: readonly string[];
  /** For a `subscriptions/listen` naming tasks (`notifications.taskIds`): decided as `tasks/get` is. */
  readonly listensToTasks?: boolean;
}

/** The permission verbs of the classic tutorial, made MCP-aware (see the design's "Roles"). */
export type Verb = 'read' | 'write' | 'delete';

/** The outcome of `decide(principal, action)`. */
export interface Decision {
  readonly allow: boolean;
  /** The rule that decided, e.g. `role:reader verb:read` or `role:admin tools.deny "rm_*"` or `default-deny`. */
  readonly rule: string;
  /** A sentence a human can read. */
  readonly reason: string;
  /** On a deny: the permission that would allow the action, e.g. `delete` or `tools:drop_table`. */
  readonly missingPermission?: string;
  /** On a deny: OAuth scopes that would allow the action (step-up), when the policy knows some. */
  readonly scopes?: readonly string[];
}

/** MCP tool annotations (MCP spec, `ToolAnnotations`); absent members take the spec's defaults. */
export interface ToolAnnotations {
  readonly readOnlyHint?: boolean;
  readonly destructiveHint?: boolean;
  readonly idempotentHint?: boolean;
  readonly openWorldHint?: boolean;
}

/**
 * The caller as the official MCP SDKs expect it on `req.auth` (`AuthInfo` in
 * `@modelcontextprotocol/sdk/server/auth/types.js` and `@modelcontextprotocol/server`); tool
 * handlers receive it as `extra.authInfo` (v1) or `ctx.http.authInfo` (v2).
 */
export interface SdkAuthInfo {
  /** The credential, or a fingerprint of it unless `exposeCredentialToHandlers` is set. */
  token: string;
  clientId: string;
  scopes: string[];
  expiresAt?: number;
  extra?: Record<string, unknown>;
}
