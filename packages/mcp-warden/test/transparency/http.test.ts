/**
 * Transparency of the Streamable HTTP upstream: the scripted client session of session-script.ts is
 * run against @modelcontextprotocol/server-everything in its Streamable HTTP mode, directly and
 * through the gateway (a `type: http` upstream), and the records are compared after the same
 * normalisation. With an admin key the gateway must be invisible; with a reader key the only
 * differences are the filtered tool list and -32003 refusals of everything not read-only.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { freePort } from '../cli/run-cli.js';
import { type Outcome, ROOTS, SAMPLING_ANSWER, SCRIPT_CAPABILITIES, type SessionRecord, runSessionScript } from './session-script.js';

const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

function textOf(o: Outcome): string {
  if (!('ok' in o)) return `error ${o.error.code ?? ''}: ${o.error.message}`;
  return ((o.ok as { content?: { text?: string }[] }).content ?? []).map((c) => c.text ?? '').join('\n');
}

const isReadOnly = (tool: Record<string, unknown>): boolean => (tool['annotations'] as { readOnlyHint?: boolean } | undefined)?.readOnlyHint === true;

/** Starts server-everything over Streamable HTTP on a free port; resolves once it listens. */
async function startEverything(): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, [everything, 'streamableHttp'], { env: { PATH: process.env['PATH'] ?? '', PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  // server-everything logs every request: keep reading (a full pipe would stall it), keep only the start.
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server-everything did not start within 15 s: ${output}`)), 15_000);
    const collect = (chunk: Buffer): void => {
      if (output.length < 4096) output += chunk.toString();
      if (output.includes('listening on port')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server-everything exited (${code}): ${output}`));
    });
  });
  return { child, url: `http://127.0.0.1:${port}/mcp` };
}

/** Stops a child: SIGTERM, then SIGKILL if it is still there after `graceMs`. */
async function stop(child: ChildProcess | undefined, graceMs = 3000): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

describe('Streamable HTTP upstream transparency: server-everything directly and through the gateway', () => {
  let upstream: { child: ChildProcess; url: string } | undefined;
  let gateway: Gateway | undefined;
  let adminKey: string;
  let readerKey: string;
  const clients: Client[] = [];
  let direct: SessionRecord;
  let admin: SessionRecord;
  let reader: SessionRecord;

  async function connect(url: string, key?: string): Promise<Client> {
    const c = new Client({ name: 'transparency-test', version: '1.0.0' }, { capabilities: SCRIPT_CAPABILITIES });
    clients.push(c);
    await c.connect(new StreamableHTTPClientTransport(new URL(url), key === undefined ? {} : { requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
    return c;
  }

  beforeAll(async () => {
    upstream = await startEverything();
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        roles: { admin: ['read', 'write', 'delete'], reader: ['read'] },
        upstreams: { everything: { type: 'http', url: upstream.url, timeout: '20s' } },
      }),
      'transparency-http.yaml',
      {},
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    adminKey = (await gateway.services.keys.create({ name: 'admin', roles: ['admin'] })).plaintext;
    readerKey = (await gateway.services.keys.create({ name: 'reader', roles: ['reader'] })).plaintext;
    const through = `${gateway.url}/mcp/everything`;
    // Three independent sessions of the same server process: run them side by side.
    [direct, admin, reader] = await Promise.all([
      connect(upstream.url).then(runSessionScript),
      connect(through, adminKey).then(runSessionScript),
      connect(through, readerKey).then(runSessionScript),
    ]);
  }, 90_000);

  afterAll(async () => {
    for (const c of clients.splice(0)) {
      const transport = c.transport as StreamableHTTPClientTransport | undefined;
      if (transport?.sessionId !== undefined) await transport.terminateSession().catch(() => {});
      await c.close().catch(() => {});
    }
    await gateway?.close();
    await stop(upstream?.child);
  }, 20_000);

  describe('with an admin key (nothing filtered)', () => {
    it('shows the same server: info, capabilities and instructions', () => {
      expect(direct.server.version).toMatchObject({ name: 'mcp-servers/everything' });
      expect(admin.server).toEqual(direct.server);
    });

    it('lists the same tools, prompts, resources and templates (names, annotations, schemas), page by page', () => {
      expect(direct.lists.tools.items.map((t) => t['name'])).toEqual(expect.arrayContaining(['echo', 'trigger-sampling-request', 'get-roots-list']));
      expect(direct.lists.resources.items.length).toBeGreaterThan(0);
      expect(direct.lists.resourceTemplates.items.length).toBeGreaterThan(0);
      expect(admin.lists).toEqual(direct.lists);
    });

    it('gets the same tool results, structured content and errors included', () => {
      expect(textOf(direct.calls['sum'] as Outcome)).toBe('The sum of 2 and 40 is 42.');
      expect(direct.calls['structured']).toMatchObject({ ok: { structuredContent: { temperature: 36 } } });
      expect(direct.calls['invalidArguments']).toMatchObject({ ok: { isError: true } });
      expect(direct.calls['unknownTool']).toMatchObject({ ok: { isError: true, content: [{ text: expect.stringContaining('no-such-tool not found') }] } });
      expect(admin.calls).toEqual(direct.calls);
    });

    it('relays every progress notification of a long-running call, in order, on the wire and to onprogress', () => {
      const all = [1, 2, 3].map((progress) => ({ progress, total: 3 }));
      expect(direct.progress.wire).toEqual(all);
      expect(direct.progress.delivered).toEqual(all);
      expect(admin.progress).toEqual(direct.progress);
    });

    it('reads the same resources, and relays updates of a subscribed resource', () => {
      expect(direct.reads['dynamicText']).toMatchObject({ ok: { contents: [{ text: 'Resource 1: This is a plaintext resource created at <time>' }] } });
      expect(admin.reads).toEqual(direct.reads);
      expect(direct.subscription.updatedWhileSubscribed).toEqual(['demo://resource/static/document/architecture.md']);
      expect(admin.subscription).toEqual(direct.subscription);
    });

    it('gets the same prompts and completions', () => {
      expect(direct.prompts['args']).toMatchObject({ ok: { messages: [{ content: { text: "What's weather in Paris, Texas?" } }] } });
      expect(direct.completions['nameInContext']).toMatchObject({ ok: { completion: { values: ['Alice', 'Bob', 'Charlie'] } } });
      expect(admin.prompts).toEqual(direct.prompts);
      expect(admin.completions).toEqual(direct.completions);
    });

    it("answers the server's sampling and elicitation requests, and relays the URL-elicitation error's data", () => {
      // Over HTTP a request may arrive twice (a resumed stream replays it; see `distinct` in
      // session-script.ts): the record keeps the distinct requests, and what they were answered.
      expect(direct.sampling.requests).toHaveLength(1);
      expect(textOf(direct.sampling.call)).toContain(SAMPLING_ANSWER);
      expect(admin.sampling).toEqual(direct.sampling);
      expect(textOf(direct.elicitation.form)).toContain('Name: Ada Lovelace');
      expect(direct.elicitation.urlErrorPath).toMatchObject({ error: { code: -32042, data: { elicitations: [{ mode: 'url', elicitationId: '<uuid>' }] } } });
      expect(admin.elicitation).toEqual(direct.elicitation);
    });

    it('relays log notifications at the level the client set', () => {
      expect(direct.logging).toMatchObject({ setLevel: { ok: {} }, simulatedReceived: true, levelsValid: true });
      expect(admin.logging).toEqual(direct.logging);
      expect(direct.logMessages).toContain('Roots updated: 1 root(s) received from client');
      expect(admin.logMessages).toEqual(direct.logMessages);
    });

    it("answers the server's roots request once, and the server reports the client's roots", () => {
      expect(direct.roots.requestsBeforeTool).toBe(1);
      expect(textOf(direct.roots.tool)).toContain(ROOTS[0]?.uri);
      expect(admin.roots).toEqual(direct.roots);
    });

    it('sees a resource the server registered during the session, and its list_changed notification', () => {
      expect(direct.sessionResource).toMatchObject({ listChanged: true, listed: true, read: { ok: { contents: [{ mimeType: 'application/gzip' }] } } });
      expect(admin.sessionResource).toEqual(direct.sessionResource);
    });

    it('runs a task-augmented tool call to its result (tasks/get, tasks/result)', () => {
      expect(direct.task.kinds[0]).toBe('taskCreated');
      expect(direct.task.kinds[direct.task.kinds.length - 1]).toBe('result');
      expect(textOf(direct.task.result)).toContain('# Research Report: gateways');
      expect(admin.task.result).toEqual(direct.task.result);
    });

    it('rejects an aborted call at once and keeps the session working', () => {
      expect(direct.cancellation).toMatchObject({ progressBeforeAbort: true, rejection: expect.stringContaining('aborted by the transparency script'), ping: { ok: {} } });
      expect(textOf(direct.cancellation.afterwards)).toBe('Echo: still here after the abort');
      expect(admin.cancellation).toEqual(direct.cancellation);
    });

    it('leaves nothing else different: the whole record is the same', () => {
      expect({ ...admin, task: { ...admin.task, kinds: [] } }).toEqual({ ...direct, task: { ...direct.task, kinds: [] } });
    });
  });

  describe('with a reader key (the read verb only)', () => {
    it('lists only the read-only tools, and every prompt, resource and template', () => {
      const readOnly = direct.lists.tools.items.filter(isReadOnly);
      expect(readOnly.length).toBeGreaterThan(0);
      expect(readOnly.length).toBeLessThan(direct.lists.tools.items.length);
      expect(reader.lists.tools.items).toEqual(readOnly);
      expect(reader.lists.prompts).toEqual(direct.lists.prompts);
      expect(reader.lists.resources).toEqual(direct.lists.resources);
      expect(reader.lists.resourceTemplates).toEqual(direct.lists.resourceTemplates);
    });

    it('gets the same results as a direct client from everything read-only', () => {
      const { unknownTool, ...readOnlyCalls } = direct.calls;
      expect(unknownTool).toBeDefined();
      expect(reader.calls).toEqual({ ...readOnlyCalls, unknownTool: expect.anything() });
      expect(reader.progress).toEqual(direct.progress);
      expect(reader.reads).toEqual(direct.reads);
      expect(reader.prompts).toEqual(direct.prompts);
      expect(reader.completions).toEqual(direct.completions);
      expect(reader.roots).toEqual(direct.roots);
      expect(reader.cancellation).toEqual(direct.cancellation);
      expect(reader.subscription.subscribe).toEqual(direct.subscription.subscribe);
      expect(reader.subscription.unsubscribe).toEqual(direct.subscription.unsubscribe);
      expect(reader.logging.setLevel).toEqual(direct.logging.setLevel);
    });

    it('is refused every other tool with -32003 naming the permission, and none of them runs', () => {
      // A tool the policy knows nothing about takes the spec's defaults (destructive): delete.
      expect(reader.calls['unknownTool']).toEqual({ error: { code: -32003, message: expect.stringContaining('missing permission: delete'), data: { rule: 'default-deny', permission: 'delete' } } });
      const refusals = [
        reader.subscription.toggleOn,
        reader.sampling.call,
        reader.elicitation.form,
        reader.elicitation.url,
        reader.elicitation.urlErrorPath,
        reader.logging.toggleOn,
        reader.sessionResource.gzip,
        reader.task.result,
      ];
      for (const refusal of refusals) {
        expect(refusal).toEqual({ error: { code: -32003, message: expect.stringContaining('missing permission: write'), data: { rule: 'default-deny', permission: 'write' } } });
      }
      expect(reader.subscription.updatedWhileSubscribed).toEqual([]);
      expect(reader.sampling.requests).toEqual([]);
      expect(reader.elicitation.requests).toEqual([]);
      expect(reader.logging.simulatedReceived).toBe(false);
      expect(reader.sessionResource).toMatchObject({ listChanged: false, listed: false, read: { error: { code: -32602 } } });
    });
  });
});
