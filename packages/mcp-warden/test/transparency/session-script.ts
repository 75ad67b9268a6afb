/**
 * One scripted MCP client session against @modelcontextprotocol/server-everything, run the same way
 * over any transport: it lists, calls, reads, subscribes, answers the server's own requests
 * (sampling, elicitation, roots) and cancels, and returns a plain JSON record of what it saw.
 * Transparency tests run it directly and through the gateway and compare the records.
 *
 * The script never stops at a refusal: every step records its outcome (a result or an error code),
 * so a principal allowed less than everything produces a record of the same shape.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  McpError,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

/** What one step produced: its result (normalised), or the error the client saw. */
export type Outcome = { readonly ok: unknown } | { readonly error: { readonly code?: number; readonly message: string; readonly data?: unknown } };

/** The items of a paginated list and the size of each page the server (or gateway) sent. */
export interface Listing {
  readonly items: readonly Record<string, unknown>[];
  readonly pageSizes: readonly number[];
}

/** One progress notification's numbers. */
export interface ProgressValue {
  readonly progress: number;
  readonly total?: number | undefined;
}

/** The client capabilities the script declares: everything server-everything can use. */
export const SCRIPT_CAPABILITIES = {
  sampling: {},
  elicitation: { form: {}, url: {} },
  roots: { listChanged: true },
} as const;

/** What the script answers to the server's requests. */
export const SAMPLING_ANSWER = 'scripted sampling answer from the transparency client';
export const ROOTS = [{ uri: 'file:///work/transparency-root', name: 'transparency root' }];
const ELICITED = { name: 'Ada Lovelace', check: true, integer: 7 };
const ELICITATION_URL = 'https://example.com/authorize';
const ELICITATION_ID = 'transparency-elicitation-1';

/** The record of one session; every member is plain JSON. */
export interface SessionRecord {
  readonly server: { readonly version: unknown; readonly capabilities: unknown; readonly instructions: unknown };
  readonly lists: { readonly tools: Listing; readonly prompts: Listing; readonly resources: Listing; readonly resourceTemplates: Listing };
  readonly calls: Readonly<Record<string, Outcome>>;
  readonly progress: {
    readonly outcome: Outcome;
    /** What the SDK handed to `onprogress`. */
    readonly delivered: readonly ProgressValue[];
    /** The progress notifications the transport received while the call ran (see `observeWire`). */
    readonly wire: readonly ProgressValue[];
  };
  readonly reads: Readonly<Record<string, Outcome>>;
  readonly subscription: {
    readonly subscribe: Outcome;
    readonly toggleOn: Outcome;
    readonly updatedWhileSubscribed: readonly string[];
    readonly toggleOff: Outcome;
    readonly unsubscribe: Outcome;
  };
  readonly prompts: Readonly<Record<string, Outcome>>;
  readonly completions: Readonly<Record<string, Outcome>>;
  readonly sampling: { readonly call: Outcome; readonly requests: readonly unknown[] };
  readonly elicitation: { readonly form: Outcome; readonly url: Outcome; readonly urlErrorPath: Outcome; readonly urlRetry: Outcome; readonly requests: readonly unknown[] };
  readonly logging: { readonly setLevel: Outcome; readonly toggleOn: Outcome; readonly simulatedReceived: boolean; readonly toggleOff: Outcome; readonly levelsValid: boolean };
  /** `requestsBeforeTool`: server-everything asks once for roots, 350 ms after initialisation. */
  readonly roots: { readonly requestsBeforeTool: number; readonly tool: Outcome; readonly requestsAfterTool: number };
  readonly sessionResource: { readonly gzip: Outcome; readonly listChanged: boolean; readonly listed: boolean; readonly read: Outcome };
  readonly task: { readonly kinds: readonly string[]; readonly result: Outcome };
  readonly cancellation: { readonly progressBeforeAbort: boolean; readonly rejection: string; readonly afterwards: Outcome; readonly ping: Outcome };
  /** Log messages server-everything sends deterministically (subscribe, unsubscribe, roots), sorted. */
  readonly logMessages: readonly string[];
}

const TIME = /\d{1,2}:\d{2}:\d{2}(?:[\s\u202f]?[AP]M)?/g;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const ISO_DATE = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g;
const TASK_ID = /\b[0-9a-f]{32}\b/g;

/**
 * Replaces what legitimately differs between two runs of the same script, and nothing else:
 * - wall-clock times (server-everything stamps dynamic resources with `toLocaleTimeString()`),
 *   also inside base64 `blob`s, which are decoded to text when they are UTF-8 so the stamp can go;
 * - random ids: UUIDs (the URL elicitation of the error path) and 32-hex-digit task ids;
 * - ISO timestamps (task creation and update times).
 */
export function normalise(value: unknown, key?: string): unknown {
  if (typeof value === 'string') {
    if (key === 'blob') {
      const text = Buffer.from(value, 'base64').toString('utf8');
      if (Buffer.from(text, 'utf8').toString('base64') === value && /^[\x20-\x7e\s]*$/.test(text)) return { decodedBlob: normalise(text) };
      return value;
    }
    return value.replace(TIME, '<time>').replace(UUID, '<uuid>').replace(TASK_ID, '<task-id>').replace(ISO_DATE, '<iso-date>');
  }
  if (Array.isArray(value)) return value.map((v) => normalise(v));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalise(v, k)]));
  }
  return value;
}

async function outcome(run: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: normalise(JSON.parse(JSON.stringify(await run()))) };
  } catch (error) {
    if (error instanceof McpError) {
      return { error: { code: error.code, message: error.message, ...(error.data === undefined ? {} : { data: normalise(error.data) }) } };
    }
    return { error: { message: (error as Error).message } };
  }
}

function succeeded(o: Outcome): boolean {
  return 'ok' in o;
}

async function listAll<K extends string>(member: K, page: (cursor: string | undefined) => Promise<Record<K, unknown[]> & { nextCursor?: string | undefined }>): Promise<Listing> {
  const items: Record<string, unknown>[] = [];
  const pageSizes: number[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 50; i++) {
    const result = await page(cursor);
    const got = result[member] as Record<string, unknown>[];
    items.push(...got);
    pageSizes.push(got.length);
    cursor = result.nextCursor;
    if (cursor === undefined) break;
  }
  return { items: normalise(JSON.parse(JSON.stringify(items))) as Record<string, unknown>[], pageSizes };
}

/** Resolves once `check()` holds, or after `timeoutMs` (the caller records whether it held). */
async function waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
}

const LEVELS = new Set(['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency']);
const SIMULATED_LOG = /level[- ]message/i;

/**
 * Records every progress notification the client's transport delivers. The SDK client settles a
 * response at once but runs notification handlers a microtask later, so over stdio a last progress
 * notification read in the same chunk as its response reaches `onprogress` too late and is dropped
 * ("unknown token"); what the transport received is the fair thing to compare between transports.
 */
function observeWireProgress(client: Client): ProgressValue[] {
  const seen: ProgressValue[] = [];
  const transport = client.transport;
  const deliver = transport?.onmessage;
  if (transport === undefined || deliver === undefined) throw new TypeError('runSessionScript needs a connected client');
  transport.onmessage = (message, extra) => {
    if ('method' in message && message.method === 'notifications/progress' && !('id' in message)) {
      const params = message.params as { progress: number; total?: number };
      seen.push({ progress: params.progress, total: params.total });
    }
    deliver.call(transport, message, extra);
  };
  return seen;
}

/** Lists every page of the four lists a server offers. */
export async function listEverything(client: Client): Promise<SessionRecord['lists']> {
  return {
    tools: await listAll('tools', (cursor) => client.listTools(cursor === undefined ? {} : { cursor })),
    prompts: await listAll('prompts', (cursor) => client.listPrompts(cursor === undefined ? {} : { cursor })),
    resources: await listAll('resources', (cursor) => client.listResources(cursor === undefined ? {} : { cursor })),
    resourceTemplates: await listAll('resourceTemplates', (cursor) => client.listResourceTemplates(cursor === undefined ? {} : { cursor })),
  };
}

/**
 * Runs the script on a client that declared {@link SCRIPT_CAPABILITIES} and has just connected.
 * It installs its own handlers first (server-everything asks for roots 350 ms after initialisation).
 */
/**
 * The distinct server requests a client answered. Over Streamable HTTP a client that sees a POST
 * stream end before its response resumes it (GET with Last-Event-ID) and server-everything replays
 * every stored event after that id, so the same sampling or elicitation request can arrive twice.
 * How often depends on where the stream's chunks fall, which differs between runs and between a
 * direct connection and a relaying gateway (it may deliver the response in the same write); what
 * the server asked, and what it was answered, does not.
 */
function distinct(requests: readonly unknown[]): unknown[] {
  const seen = new Set<string>();
  return requests.filter((r) => {
    const key = JSON.stringify(r);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export async function runSessionScript(client: Client): Promise<SessionRecord> {
  const logs: { level: string; data: unknown }[] = [];
  const updated: string[] = [];
  let resourceListChanged = 0;
  const samplingRequests: unknown[] = [];
  const elicitationRequests: unknown[] = [];
  let rootsRequests = 0;

  const wireProgress = observeWireProgress(client);
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push({ level: n.params.level, data: n.params.data });
  });
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    updated.push(n.params.uri);
  });
  client.setNotificationHandler(ResourceListChangedNotificationSchema, () => {
    resourceListChanged++;
  });
  client.setRequestHandler(CreateMessageRequestSchema, (request) => {
    samplingRequests.push(normalise(request.params));
    return { model: 'scripted-model', role: 'assistant', stopReason: 'endTurn', content: { type: 'text', text: SAMPLING_ANSWER } };
  });
  client.setRequestHandler(ElicitRequestSchema, (request) => {
    elicitationRequests.push(normalise(request.params));
    return request.params.mode === 'url' ? { action: 'accept' } : { action: 'accept', content: ELICITED };
  });
  client.setRequestHandler(ListRootsRequestSchema, () => {
    rootsRequests++;
    return { roots: ROOTS };
  });

  const server = { version: client.getServerVersion() ?? null, capabilities: client.getServerCapabilities() ?? null, instructions: client.getInstructions() ?? null };
  const lists = await listEverything(client);
  const call = (name: string, args: Record<string, unknown> = {}) => outcome(() => client.callTool({ name, arguments: args }));

  const calls = {
    echo: await call('echo', { message: 'transparency' }),
    sum: await call('get-sum', { a: 2, b: 40 }),
    structured: await call('get-structured-content', { location: 'Chicago' }),
    annotated: await call('get-annotated-message', { messageType: 'success', includeImage: true }),
    tinyImage: await call('get-tiny-image'),
    resourceLinks: await call('get-resource-links', { count: 2 }),
    resourceReference: await call('get-resource-reference', { resourceType: 'text', resourceId: 1 }),
    invalidArguments: await call('get-sum', { a: 'two', b: 40 }),
    unknownTool: await call('no-such-tool'),
  };

  const delivered: ProgressValue[] = [];
  const wireStart = wireProgress.length;
  const progress = {
    outcome: await outcome(() =>
      client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 0.6, steps: 3 } }, undefined, {
        onprogress: (p) => delivered.push({ progress: p.progress, total: p.total }),
      }),
    ),
    delivered,
    wire: wireProgress.slice(wireStart),
  };

  const staticUri = 'demo://resource/static/document/architecture.md';
  const reads = {
    static: await outcome(() => client.readResource({ uri: staticUri })),
    dynamicText: await outcome(() => client.readResource({ uri: 'demo://resource/dynamic/text/1' })),
    dynamicBlob: await outcome(() => client.readResource({ uri: 'demo://resource/dynamic/blob/2' })),
    unknown: await outcome(() => client.readResource({ uri: 'demo://resource/dynamic/text/0' })),
  };

  const subscribe = await outcome(() => client.subscribeResource({ uri: staticUri }));
  const subscriberOn = await call('toggle-subscriber-updates');
  // The first update is sent at once, while the toggle call is still in flight; later ones every 5 s.
  if (succeeded(subscriberOn)) await waitFor(() => updated.includes(staticUri), 3000);
  const updatedWhileSubscribed = [...new Set(updated)];
  const subscription = {
    subscribe,
    toggleOn: subscriberOn,
    updatedWhileSubscribed,
    toggleOff: succeeded(subscriberOn) ? await call('toggle-subscriber-updates') : subscriberOn,
    unsubscribe: await outcome(() => client.unsubscribeResource({ uri: staticUri })),
  };

  const prompts = {
    simple: await outcome(() => client.getPrompt({ name: 'simple-prompt' })),
    args: await outcome(() => client.getPrompt({ name: 'args-prompt', arguments: { city: 'Paris', state: 'Texas' } })),
    completable: await outcome(() => client.getPrompt({ name: 'completable-prompt', arguments: { department: 'Engineering', name: 'Alice' } })),
    resource: await outcome(() => client.getPrompt({ name: 'resource-prompt', arguments: { resourceType: 'Text', resourceId: '3' } })),
    missingArgument: await outcome(() => client.getPrompt({ name: 'args-prompt', arguments: {} })),
    unknown: await outcome(() => client.getPrompt({ name: 'no-such-prompt' })),
  };

  const completions = {
    department: await outcome(() => client.complete({ ref: { type: 'ref/prompt', name: 'completable-prompt' }, argument: { name: 'department', value: 'S' } })),
    nameInContext: await outcome(() =>
      client.complete({
        ref: { type: 'ref/prompt', name: 'completable-prompt' },
        argument: { name: 'name', value: '' },
        context: { arguments: { department: 'Engineering' } },
      }),
    ),
    resourceTemplate: await outcome(() =>
      client.complete({ ref: { type: 'ref/resource', uri: 'demo://resource/dynamic/text/{resourceId}' }, argument: { name: 'resourceId', value: '7' } }),
    ),
  };

  const sampling = {
    call: await call('trigger-sampling-request', { prompt: 'What does a gateway add?', maxTokens: 50 }),
    requests: distinct(samplingRequests),
  };

  const urlArguments = { url: ELICITATION_URL, message: 'Authorise the transparency test', elicitationId: ELICITATION_ID };
  const elicitation = {
    form: await call('trigger-elicitation-request'),
    url: await call('trigger-url-elicitation', urlArguments),
    // The error path answers -32042 with the prerequisite elicitation in the error's data; the retry
    // with the same arguments then goes through the request path.
    urlErrorPath: await call('trigger-url-elicitation', { ...urlArguments, errorPath: true }),
    urlRetry: await call('trigger-url-elicitation', { ...urlArguments, errorPath: true }),
    requests: distinct(elicitationRequests),
  };

  const setLevel = await outcome(() => client.setLoggingLevel('debug'));
  const loggingOn = await call('toggle-simulated-logging');
  const simulated = () => logs.some((l) => typeof l.data === 'string' && SIMULATED_LOG.test(l.data));
  if (succeeded(loggingOn)) await waitFor(simulated, 3000);
  const logging = {
    setLevel,
    toggleOn: loggingOn,
    simulatedReceived: simulated(),
    toggleOff: succeeded(loggingOn) ? await call('toggle-simulated-logging') : loggingOn,
    levelsValid: logs.every((l) => LEVELS.has(l.level)),
  };

  // server-everything asks for roots 350 ms after initialisation, on the GET stream: waited for,
  // not assumed to have arrived (through the gateway on a busy machine it sometimes had not).
  await waitFor(() => rootsRequests > 0, 3000);
  const requestsBeforeTool = rootsRequests;
  const rootsTool = await call('get-roots-list');
  const roots = { requestsBeforeTool, tool: rootsTool, requestsAfterTool: rootsRequests };

  const gzipName = 'transparency.txt.gz';
  const listChangedBefore = resourceListChanged;
  const gzip = await call('gzip-file-as-resource', {
    name: gzipName,
    data: `data:text/plain;base64,${Buffer.from('bytes relayed unchanged\n').toString('base64')}`,
    outputType: 'resourceLink',
  });
  if (succeeded(gzip)) await waitFor(() => resourceListChanged > listChangedBefore, 2000);
  const sessionUri = `demo://resource/session/${gzipName}`;
  const sessionResource = {
    gzip,
    listChanged: resourceListChanged > listChangedBefore,
    listed: (await listEverything(client)).resources.items.some((r) => r['uri'] === sessionUri),
    read: await outcome(() => client.readResource({ uri: sessionUri })),
  };

  const kinds: string[] = [];
  const task = {
    kinds,
    result: await outcome(async () => {
      let last: unknown;
      for await (const message of client.experimental.tasks.callToolStream({ name: 'simulate-research-query', arguments: { topic: 'gateways', ambiguous: false } })) {
        if (kinds[kinds.length - 1] !== message.type) kinds.push(message.type);
        if (message.type === 'error') throw message.error;
        if (message.type === 'result') last = message.result;
      }
      return last;
    }),
  };

  const controller = new AbortController();
  let progressBeforeAbort = false;
  const cancelled = client
    .callTool({ name: 'trigger-long-running-operation', arguments: { duration: 3, steps: 10 } }, undefined, {
      signal: controller.signal,
      onprogress: () => {
        progressBeforeAbort = true;
        controller.abort(new Error('aborted by the transparency script'));
      },
    })
    .then(
      () => 'resolved',
      (error: unknown) => (error as Error).message,
    );
  const rejection = await Promise.race([cancelled, new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 5 s'), 5000))]);
  const cancellation = {
    progressBeforeAbort,
    rejection,
    afterwards: await call('echo', { message: 'still here after the abort' }),
    ping: await outcome(() => client.ping()),
  };

  const logMessages = [...new Set(logs.map((l) => String(normalise(l.data))).filter((d) => !SIMULATED_LOG.test(d)))].sort();
  return { server, lists, calls, progress, reads, subscription, prompts, completions, sampling, elicitation, logging, roots, sessionResource, task, cancellation, logMessages };
}
