import { describe, expect, it } from 'vitest';
import { Policy, requiredVerb } from '../../src/authz/policy.js';
import type { McpAction } from '../../src/types.js';
import { principal } from '../helpers.js';

const tool = (target: string): McpAction => ({ method: 'tools/call', kind: 'tool', id: 1, target });
const resource = (target: string): McpAction => ({ method: 'resources/read', kind: 'resource', id: 1, target });
const prompt = (target: string): McpAction => ({ method: 'prompts/get', kind: 'prompt', id: 1, target });

function tutorialPolicy(): Policy {
  const policy = new Policy({ roles: { admin: ['read', 'write', 'delete'], writer: ['write'], reader: ['read'] } });
  policy.annotations.learn([
    { name: 'read_file', annotations: { readOnlyHint: true } },
    { name: 'write_file', annotations: { readOnlyHint: false, destructiveHint: false } },
    { name: 'delete_file', annotations: { readOnlyHint: false, destructiveHint: true } },
    { name: 'bare' },
  ]);
  return policy;
}

describe('requiredVerb (MCP ToolAnnotations defaults)', () => {
  it('maps annotations to verbs', () => {
    expect(requiredVerb({ readOnlyHint: true })).toBe('read');
    expect(requiredVerb({ readOnlyHint: true, destructiveHint: true })).toBe('read');
    expect(requiredVerb({ destructiveHint: false })).toBe('write');
    expect(requiredVerb({ readOnlyHint: false })).toBe('delete');
    expect(requiredVerb({})).toBe('delete');
    expect(requiredVerb(undefined)).toBe('delete');
  });
});

describe('Policy', () => {
  const policy = tutorialPolicy();
  const reader = principal(['reader']);
  const writer = principal(['writer']);
  const admin = principal(['admin']);

  it('gives read the read-only tools, write the non-destructive ones, delete the rest', () => {
    const allowed = (p: ReturnType<typeof principal>) =>
      ['read_file', 'write_file', 'delete_file', 'bare', 'never_listed'].filter((t) => policy.decide(p, tool(t)).allow);
    expect(allowed(reader)).toEqual(['read_file']);
    expect(allowed(writer)).toEqual(['read_file', 'write_file']);
    expect(allowed(admin)).toEqual(['read_file', 'write_file', 'delete_file', 'bare', 'never_listed']);
  });

  it('names the rule and the missing permission of every decision', () => {
    expect(policy.decide(reader, tool('read_file'))).toMatchObject({ allow: true, rule: 'role:reader verb:read' });
    const denied = policy.decide(reader, tool('delete_file'));
    expect(denied).toMatchObject({ allow: false, rule: 'default-deny', missingPermission: 'delete' });
    expect(denied.reason).toContain('delete_file');
    expect(denied.reason).toContain('reader');
    expect(policy.decide(writer, tool('bare')).missingPermission).toBe('delete');
  });

  it('denies by default: no roles, unknown roles, unknown methods', () => {
    expect(policy.decide(principal([]), tool('read_file'))).toMatchObject({ allow: false, rule: 'default-deny' });
    expect(policy.decide(principal(['ghost']), resource('file:///a')).allow).toBe(false);
    expect(policy.decide(admin, { method: 'vendor/x', kind: 'other', id: 1 })).toMatchObject({
      allow: false,
      missingPermission: 'methods:vendor/x',
    });
  });

  it('lets every authenticated principal through lifecycle, notifications, responses and lists', () => {
    const nobody = principal([]);
    for (const action of [
      { method: 'initialize', kind: 'lifecycle', id: 1 },
      { method: 'server/discover', kind: 'lifecycle', id: 1 },
      { method: 'notifications/initialized', kind: 'notification' },
      { method: 'response', kind: 'response', id: 3 },
      { method: 'tools/list', kind: 'list', id: 1, list: 'tools' },
    ] as McpAction[]) {
      expect(policy.decide(nobody, action).allow, action.method).toBe(true);
    }
  });

  it('allows resources and prompts with read', () => {
    expect(policy.decide(reader, resource('file:///docs/a.md')).allow).toBe(true);
    expect(policy.decide(reader, prompt('greet')).allow).toBe(true);
    expect(policy.decide(principal([]), prompt('greet')).allow).toBe(false);
  });

  describe('patterns', () => {
    const patterned = new Policy({
      roles: {
        reader: { verbs: ['read'], tools: { allow: ['deploy_preview'], deny: ['secret_*'] }, resources: { deny: ['file:///etc/**'] } },
        docs: { resources: { allow: ['file:///docs/**'] }, prompts: { allow: ['help_*'] } },
        ops: { methods: { allow: ['vendor/*'] } },
      },
      deny: { tools: ['drop_*'] },
    });
    patterned.annotations.learn([
      { name: 'secret_dump', annotations: { readOnlyHint: true } },
      { name: 'drop_table', annotations: { readOnlyHint: true } },
      { name: 'list_things', annotations: { readOnlyHint: true } },
    ]);

    it('allows by pattern whatever the annotations', () => {
      expect(patterned.decide(principal(['reader']), tool('deploy_preview'))).toMatchObject({
        allow: true,
        rule: 'role:reader tools.allow "deploy_preview"',
      });
    });
    it('lets deny win over the verb, over allow patterns and over other roles', () => {
      expect(patterned.decide(principal(['reader']), tool('secret_dump'))).toMatchObject({ allow: false, rule: 'role:reader tools.deny "secret_*"' });
      expect(patterned.decide(principal(['reader', 'docs']), resource('file:///etc/passwd')).allow).toBe(false);
      expect(patterned.decide(principal(['reader']), tool('drop_table'))).toMatchObject({ allow: false, rule: 'policy.deny.tools "drop_*"' });
    });
    it('scopes * to one path segment and ** to any depth', () => {
      const docs = principal(['docs']);
      expect(patterned.decide(docs, resource('file:///docs/a/b/c.md')).allow).toBe(true);
      expect(patterned.decide(docs, resource('file:///docsx/a.md')).allow).toBe(false);
      expect(patterned.decide(docs, prompt('help_me')).allow).toBe(true);
      expect(patterned.decide(docs, prompt('help/me')).allow).toBe(false);
      expect(patterned.decide(docs, tool('list_things')).allow).toBe(false);
    });
    it('allows other methods only by an explicit methods pattern', () => {
      expect(patterned.decide(principal(['ops']), { method: 'vendor/report', kind: 'other', id: 1 }).allow).toBe(true);
      expect(patterned.decide(principal(['ops']), { method: 'other/report', kind: 'other', id: 1 }).allow).toBe(false);
    });
  });

  it('reads annotations from an SDK server object, and lets configured ones override', () => {
    const fakeServer = { _registeredTools: { from_server: { annotations: { readOnlyHint: true } } } };
    const p = new Policy({ roles: { reader: ['read'] }, toolAnnotations: { overridden: { readOnlyHint: true } } });
    p.annotations.addServer(fakeServer);
    p.annotations.learn([{ name: 'overridden', annotations: { readOnlyHint: false } }]);
    expect(p.decide(principal(['reader']), tool('from_server')).allow).toBe(true);
    expect(p.decide(principal(['reader']), tool('overridden')).allow).toBe(true);
    expect(() => p.annotations.addServer({})).toThrow(/McpServer/);
  });

  describe('remembered decisions', () => {
    it('follow annotations as they change: learned, and read live from a server', () => {
      const registered: Record<string, { annotations?: object }> = {};
      const p = new Policy({ roles: { reader: ['read'], admin: ['read', 'write', 'delete'] } });
      p.annotations.addServer({ _registeredTools: registered });
      const reader = { ...principal([]), roles: Object.freeze(['reader']) };
      expect(p.decide(reader, tool('late')).allow).toBe(false);
      registered['late'] = { annotations: { readOnlyHint: true } };
      expect(p.decide(reader, tool('late')).allow).toBe(true);
      // Changed in place, not replaced: still seen.
      (registered['late'].annotations as { readOnlyHint: boolean }).readOnlyHint = false;
      expect(p.decide(reader, tool('late')).allow).toBe(false);
      p.annotations.learn([{ name: 'late', annotations: { readOnlyHint: true } }]);
      expect(p.decide(reader, tool('late')).allow).toBe(true);
      p.annotations.learn([{ name: 'late', annotations: { destructiveHint: true } }]);
      expect(p.decide(reader, tool('late')).allow).toBe(false);
    });

    it('are kept apart by method, kind and target, and frozen', () => {
      const p = tutorialPolicy();
      const reader = { ...principal([]), roles: Object.freeze(['reader']) };
      const first = p.decide(reader, tool('read_file'));
      expect(Object.isFrozen(first)).toBe(true);
      expect(p.decide(reader, tool('read_file'))).toBe(first);
      expect(p.decide(reader, tool('delete_file')).allow).toBe(false);
      expect(p.decide(reader, prompt('read_file')).allow).toBe(true);
      expect(p.decide(reader, { method: 'tools/call', kind: 'tool', id: 1 }).allow).toBe(false);
      // Method and target are kept apart: 'a' with target '/b' does not borrow the answer for 'a/b'.
      const ops = new Policy({ roles: { ops: { methods: { allow: ['a/b'] } } } });
      const caller = { ...principal([]), roles: Object.freeze(['ops']) };
      expect(ops.decide(caller, { method: 'a/b', kind: 'other', id: 1 }).allow).toBe(true);
      expect(ops.decide(caller, { method: 'a', kind: 'other', id: 1, target: '/b' }).allow).toBe(false);
      expect(ops.decide(caller, { method: 'a/b', kind: 'other', id: 1 }).allow).toBe(true);
    });

    it('are kept by role names, not arrays: a changed array, names that would join alike, no roles', () => {
      const p = new Policy({ roles: { a: ['read'], b: ['write'], '': ['delete'] } });
      p.annotations.learn([{ name: 'w', annotations: { destructiveHint: false } }, { name: 'd', annotations: {} }]);
      const as = (roles: string[]) => ({ ...principal([]), roles });
      expect(p.decide(as(['a', 'b']), tool('w')).allow).toBe(true);
      expect(p.decide(as(['a\u0000b']), tool('w')).allow).toBe(false);
      expect(p.decide(as(['']), tool('d')).allow).toBe(true);
      expect(p.decide(as([]), tool('d')).allow).toBe(false);
      expect(p.decide(as(['', '']), tool('d')).allow).toBe(true);
      expect(p.decide(as([]), tool('d')).allow).toBe(false);
    });

    it('are not kept for long names (requests choose them), nor break on a role name that is not a string', () => {
      const p = tutorialPolicy();
      const reader = { ...principal([]), roles: Object.freeze(['reader']) };
      const long = `x/${'a'.repeat(600)}`;
      const first = p.decide(reader, { method: long, kind: 'other', id: 1 });
      expect(first.allow).toBe(false);
      expect(p.decide(reader, { method: long, kind: 'other', id: 1 })).not.toBe(first);
      expect(p.decide(reader, tool('read_file'))).toBe(p.decide(reader, tool('read_file')));
      const odd = { ...principal([]), roles: ['reader', 7 as unknown as string] };
      expect(p.decide(odd, tool('read_file')).allow).toBe(true);
      expect(p.decide(odd, tool('write_file')).allow).toBe(false);
    });

    it('follow a roles array that changes, and stay right past the memo size', () => {
      const p = tutorialPolicy();
      const roles = ['reader'];
      const mutable = { ...principal([]), roles };
      expect(p.decide(mutable, tool('write_file')).allow).toBe(false);
      roles.push('writer');
      expect(p.decide(mutable, tool('write_file')).allow).toBe(true);
      const reader = { ...principal([]), roles: Object.freeze(['reader']) };
      for (let i = 0; i < 9000; i++) expect(p.decide(reader, tool(`unknown_${i}`)).allow).toBe(false);
      expect(p.decide(reader, tool('read_file')).allow).toBe(true);
      expect(p.decide(reader, tool('write_file')).allow).toBe(false);
    });
  });

  it('validates its options, naming the offending key', () => {
    expect(() => new Policy({ roles: { r: ['reed' as 'read'] } })).toThrow(/policy\.roles\.r\.verbs: "reed"/);
    expect(() => new Policy({ roles: { r: { tools: { allow: [''] } } } })).toThrow(/policy\.roles\.r\.tools\.allow\[0\]/);
    expect(() => new Policy({} as never)).toThrow(/policy\.roles/);
  });

  describe('Security', () => {
    it('unicode look-alike tool names neither borrow annotations nor evade deny patterns', () => {
      const p = new Policy({ roles: { reader: { verbs: ['read'], tools: { deny: ['delete_*'] } } } });
      p.annotations.learn([{ name: 'read_file', annotations: { readOnlyHint: true } }, { name: 'dеlete_all', annotations: { readOnlyHint: true } }]);
      // Cyrillic "а" in "reаd_file": a different tool, not annotated, so it needs delete.
      expect(p.decide(principal(['reader']), tool('re\u0430d_file')).allow).toBe(false);
      // Cyrillic "е" in "dеlete_all" claims to be read-only, but the deny pattern still catches it.
      expect(p.decide(principal(['reader']), tool('d\u0435lete_all'))).toMatchObject({ allow: false, rule: 'role:reader tools.deny "delete_*"' });
      // Full-width and upper-case forms fold to the same name.
      expect(p.decide(principal(['reader']), tool('ＤＥＬＥＴＥ_x')).allow).toBe(false);
    });
    it('refuses names with invisible or control characters', () => {
      const p = new Policy({ roles: { admin: ['delete'] } });
      for (const name of ['read\u200bfile', 'a\u202eb', 'x\ny', 'x\u0000', '']) {
        expect(p.decide(principal(['admin']), tool(name)), JSON.stringify(name)).toMatchObject({ allow: false, rule: 'builtin:invalid-target' });
      }
    });
    it('subscriptions/listen (2026-07-28) follows only resources the caller may read, as resources/subscribe does', () => {
      const p = new Policy({ roles: { reader: { verbs: ['read'], resources: { deny: ['file:///etc/**'] } }, docs: { resources: { allow: ['file:///docs/**'] } } } });
      const listen = (...subscriptions: string[]): McpAction => ({ method: 'subscriptions/listen', kind: 'lifecycle', id: 1, subscriptions });
      const reader = principal(['reader']);
      expect(p.decide(reader, listen('file:///docs/a.md', 'file:///srv/b')).allow).toBe(true);
      const refused = p.decide(reader, listen('file:///docs/a.md', 'file:///etc/passwd'));
      expect(refused).toMatchObject({ allow: false, rule: 'role:reader resources.deny "file:///etc/**"' });
      expect(refused.reason).toMatch(/^subscriptions\/listen: resource "file:\/\/\/etc\/passwd" is denied/);
      // Path and encoding tricks, and a malformed filter, are refused as they are for resources/read.
      const docs = principal(['docs']);
      expect(p.decide(docs, listen('file:///docs/a.md')).allow).toBe(true);
      for (const uri of ['file:///docs/../etc/passwd', 'file:///docs/%2e%2e/etc/passwd', 'file:///docs/a\u0000', 'file:///srv/b', '']) {
        expect(p.decide(docs, listen('file:///docs/a.md', uri)).allow, JSON.stringify(uri)).toBe(false);
      }
      expect(p.decide(docs, listen('')).rule).toBe('builtin:invalid-target');
      // A listen that follows no resource stays a lifecycle message, allowed to everyone.
      expect(p.decide(principal([]), { method: 'subscriptions/listen', kind: 'lifecycle', id: 1 }).allow).toBe(true);
      // Remembered decisions do not mix two listens up.
      expect(p.decide(reader, listen('file:///docs/a.md')).allow).toBe(true);
      expect(p.decide(reader, listen('file:///etc/shadow')).allow).toBe(false);
    });
    it('subscriptions/listen is refused where resources/subscribe and tasks/get are refused by method patterns and roles', () => {
      const p = new Policy({
        roles: { reader: { verbs: ['read'], methods: { deny: ['resources/subscribe'] } }, none: {}, watcher: { methods: { allow: ['tasks/get'] } } },
        deny: { methods: ['tasks/*'] },
      });
      const followResource: McpAction = { method: 'subscriptions/listen', kind: 'lifecycle', id: 1, subscriptions: ['file:///docs/a.md'] };
      const followTasks: McpAction = { method: 'subscriptions/listen', kind: 'lifecycle', id: 1, listensToTasks: true };
      expect(p.decide(principal(['reader']), { method: 'resources/read', kind: 'resource', id: 1, target: 'file:///docs/a.md' }).allow).toBe(true);
      expect(p.decide(principal(['reader']), followResource)).toMatchObject({ allow: false, rule: 'role:reader methods.deny "resources/subscribe"' });
      // tasks/* is denied to everyone here.
      expect(p.decide(principal(['reader']), followTasks)).toMatchObject({ allow: false, rule: 'policy.deny.methods "tasks/*"' });
      const open = new Policy({ roles: { reader: ['read'], none: {}, watcher: { methods: { allow: ['tasks/get'] } } } });
      expect(open.decide(principal(['reader']), followTasks).allow).toBe(true);
      expect(open.decide(principal(['watcher']), followTasks).allow).toBe(true);
      expect(open.decide(principal(['none']), followTasks)).toMatchObject({ allow: false, rule: 'default-deny' });
      expect(open.decide(principal(['none']), { method: 'subscriptions/listen', kind: 'lifecycle', id: 1 }).allow).toBe(true);
    });
    it("a role's methods.deny of tasks/* refuses every task method to it while it still reads (docs/gateway.md: task ids of session-less upstreams)", () => {
      const p = new Policy({ roles: { reader: { verbs: ['read'], methods: { deny: ['tasks/*'] } }, operator: ['read'] } });
      for (const method of ['tasks/get', 'tasks/update', 'tasks/cancel']) {
        const action: McpAction = { method, kind: 'task', id: 1, target: 'task-1' };
        expect(p.decide(principal(['reader']), action)).toMatchObject({ allow: false, rule: 'role:reader methods.deny "tasks/*"' });
        expect(p.decide(principal(['operator']), action).allow).toBe(true);
      }
      expect(p.decide(principal(['reader']), { method: 'resources/read', kind: 'resource', id: 1, target: 'file:///a' }).allow).toBe(true);
    });
    it('resource URIs with .. or percent-encoding tricks do not slip through globs', () => {
      const p = new Policy({ roles: { docs: { resources: { allow: ['file:///docs/**'] } } } });
      const docs = principal(['docs']);
      for (const uri of [
        'file:///docs/../etc/passwd',
        'file:///docs/./../../etc/passwd',
        'file:///docs/%2e%2e/etc/passwd',
        'file:///docs/%2E%2E/etc/passwd',
        'file:///docs/..%2fetc/passwd',
        'file:///docs/%252e%252e/etc/passwd',
        'file:///docs\\..\\etc\\passwd',
        'file:///docs/%zz',
        'file:///docs/a\u0000.md',
        'file:///docs/..',
        'file:..',
        'file:../etc/passwd',
        'file:./docs/../../etc/passwd',
      ]) {
        expect(p.decide(docs, resource(uri)).allow, uri).toBe(false);
      }
      expect(p.decide(docs, resource('file:///docs/guide%20one.md')).allow).toBe(true);
    });
    it('a resource deny rule holds for other spellings of the URI a server reads the same way', () => {
      // A server that maps URIs to files decodes them (fileURLToPath, decodeURIComponent): these all
      // name file:///srv/secret/x.txt there. Found by an adversarial probe of the gateway.
      const p = new Policy({ roles: { reader: { verbs: ['read'], resources: { deny: ['file:///srv/secret/**', 'note://Private/*'] } } } });
      const reader = principal(['reader']);
      for (const uri of [
        'file:///srv/secret/x.txt',
        'file:///srv/%73ecret/x.txt',
        'file:///srv/%73%65%63%72%65%74/x.txt',
        'file://localhost/srv/secret/x.txt',
        'file://LOCALHOST/srv/secret/x.txt',
        'FILE:///srv/secret/x.txt',
        'file:///srv//secret/x.txt',
        'file:////srv/secret/x.txt',
        'file:///srv/secret//x.txt',
        'note://private/%64ay',
        'NOTE://PRIVATE/day',
        // As a WHATWG URL parser (Node's fileURLToPath) reads them: rooted, host decoded, no query.
        'file:/srv/secret/x.txt',
        'file:srv/secret/x.txt',
        'file://localh%6Fst/srv/secret/x.txt',
        'file:///srv/secret/x.txt?raw=1',
        'file:///srv/secret/x.txt#top',
      ]) {
        expect(p.decide(reader, resource(uri)), uri).toMatchObject({ allow: false, rule: expect.stringMatching(/resources\.deny/) });
      }
      const exact = new Policy({ roles: { reader: { verbs: ['read'], resources: { deny: ['file:///home/u/.env', 'https://host/secret/**'] } } } });
      for (const uri of ['file:///home/u/.env?', 'file:///home/u/.env#x', 'file:/home/u//.env', 'https://h%6Fst/secret/x', 'HTTPS://HOST/secret/x']) {
        expect(exact.decide(reader, resource(uri)).allow, uri).toBe(false);
      }
      expect(exact.decide(reader, resource('https://host/public/x?secret')).allow).toBe(true);
      for (const uri of ['file:///srv/public/x.txt', 'file:///srv/secret-not/x.txt', 'file://otherhost/srv/secret/x.txt', 'file:///srv/%C3%A9t%C3%A9.txt', 'test://static/resource/1']) {
        expect(p.decide(reader, resource(uri)).allow, uri).toBe(true);
      }
    });
  });
});
