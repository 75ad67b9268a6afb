import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toErrorResponse } from '../../src/errors.js';
import { checkMcpHeaders, classifyBody, classifyMessage, classifyParsed, decodeMcpHeaderValue, inexactNumber } from '../../src/mcp/classify.js';
import { codeOf, view } from '../helpers.js';


const request = (method: string, params?: unknown, id: number | string = 1) => ({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });

describe('classifyMessage', () => {
  it('names tool calls with their arguments', () => {
    expect(classifyMessage(request('tools/call', { name: 'echo', arguments: { text: 'hi' } }))).toEqual({
      method: 'tools/call',
      id: 1,
      kind: 'tool',
      target: 'echo',
      arguments: { text: 'hi' },
    });
  });
  it('names resources, prompts, completions and lists', () => {
    expect(classifyMessage(request('resources/read', { uri: 'file:///a' }))).toMatchObject({ kind: 'resource', target: 'file:///a' });
    expect(classifyMessage(request('resources/subscribe', { uri: 'file:///a' }))).toMatchObject({ kind: 'resource', target: 'file:///a' });
    expect(classifyMessage(request('prompts/get', { name: 'greet', arguments: { who: 'x' } }))).toMatchObject({
      kind: 'prompt',
      target: 'greet',
      arguments: { who: 'x' },
    });
    expect(classifyMessage(request('completion/complete', { ref: { type: 'ref/prompt', name: 'greet' } }))).toMatchObject({
      kind: 'prompt',
      target: 'greet',
    });
    expect(classifyMessage(request('completion/complete', { ref: { type: 'ref/resource', uri: 'file:///{p}' } }))).toMatchObject({
      kind: 'resource',
      target: 'file:///{p}',
      template: true,
    });
    expect(classifyMessage(request('tools/list'))).toMatchObject({ kind: 'list', list: 'tools' });
    expect(classifyMessage(request('resources/templates/list'))).toMatchObject({ kind: 'list', list: 'resourceTemplates' });
  });
  it('names lifecycle messages of all three revisions, notifications and responses', () => {
    for (const method of ['initialize', 'server/discover', 'ping', 'logging/setLevel']) {
      expect(classifyMessage(request(method)).kind, method).toBe('lifecycle');
    }
    expect(classifyMessage({ jsonrpc: '2.0', method: 'notifications/initialized' })).toMatchObject({ kind: 'notification' });
    expect(classifyMessage({ jsonrpc: '2.0', id: 7, result: {} })).toMatchObject({ kind: 'response', id: 7 });
    expect(classifyMessage({ jsonrpc: '2.0', id: 7, error: { code: 1, message: 'x' } })).toMatchObject({ kind: 'response' });
    expect(classifyMessage(request('tasks/get', { taskId: 't' }))).toMatchObject({ kind: 'task' });
    expect(classifyMessage(request('vendor/thing'))).toMatchObject({ kind: 'other' });
  });
  it('names the resources a 2026-07-28 subscriptions/listen follows', () => {
    const listen = (notifications: unknown) => classifyMessage(request('subscriptions/listen', { notifications }));
    expect(listen({ toolsListChanged: true, resourceSubscriptions: ['file:///a', 'file:///b'] })).toEqual({
      method: 'subscriptions/listen',
      id: 1,
      kind: 'lifecycle',
      subscriptions: ['file:///a', 'file:///b'],
    });
    // Following no resource: a lifecycle message like any other.
    for (const notifications of [{ toolsListChanged: true }, { resourceSubscriptions: [] }, { resourceSubscriptions: null }, undefined, null]) {
      expect(listen(notifications), JSON.stringify(notifications)).toEqual({ method: 'subscriptions/listen', id: 1, kind: 'lifecycle' });
    }
    expect(classifyMessage(request('subscriptions/listen'))).toEqual({ method: 'subscriptions/listen', id: 1, kind: 'lifecycle' });
  });
  it('Security: a listen filter the policy cannot fully read is marked refused ([""])', () => {
    const many = Array.from({ length: 1001 }, (_, i) => `file:///r${i}`);
    for (const notifications of [
      'x',
      7,
      [],
      { resourceSubscriptions: 'file:///a' },
      { resourceSubscriptions: ['file:///a', 7] },
      { resourceSubscriptions: [{ uri: 'file:///a' }] },
      // A field it does not know may name something to the upstream.
      { toolsListChanged: true, resourceUris: ['file:///a'] },
      JSON.parse('{"__proto__": ["file:///a"]}') as unknown,
      { resourceSubscriptions: many },
    ]) {
      expect(classifyMessage(request('subscriptions/listen', { notifications })).subscriptions, JSON.stringify(notifications).slice(0, 80)).toEqual(['']);
    }
    expect(classifyMessage(request('subscriptions/listen', { notifications: { resourceSubscriptions: many.slice(0, 1000) } })).subscriptions).toHaveLength(1000);
  });
  it('Security: a listen filter is read as servers may read it: snake_case names, inherited members, tasks', () => {
    const listen = (notifications: unknown) => classifyMessage(request('subscriptions/listen', { notifications }));
    // The python-sdk's models accept a field by its snake_case name too.
    expect(listen({ resource_subscriptions: ['secret://a'], resourceSubscriptions: ['file:///b'] }).subscriptions).toEqual(['secret://a', 'file:///b']);
    expect(listen({ tools_list_changed: true })).toEqual({ method: 'subscriptions/listen', id: 1, kind: 'lifecycle' });
    // A validator reading filter[key] sees inherited members.
    expect(listen(Object.create({ resourceSubscriptions: ['file:///a'] }) as object).subscriptions).toEqual(['file:///a']);
    // The tasks extension's taskIds: decided as tasks/get.
    expect(listen({ taskIds: ['t1'] })).toEqual({ method: 'subscriptions/listen', id: 1, kind: 'lifecycle', listensToTasks: true });
    expect(listen({ task_ids: ['t1'], resourceSubscriptions: ['file:///a'] })).toMatchObject({ listensToTasks: true, subscriptions: ['file:///a'] });
  });
  it('does not read names from the prototype chain', () => {
    expect(classifyMessage(request('tools/call', {}))).toMatchObject({ kind: 'tool' });
    expect(classifyMessage(request('tools/call', {})).target).toBeUndefined();
    expect(classifyMessage(request('constructor')).kind).toBe('other');
    expect(classifyMessage(request('toString')).kind).toBe('other');
  });
  it('refuses what is not JSON-RPC 2.0', () => {
    for (const bad of [null, 1, 'x', [], { id: 1, method: 'x' }, { jsonrpc: '1.0', id: 1, method: 'x' }, { jsonrpc: '2.0', id: {}, method: 'x' },
      { jsonrpc: '2.0', id: 1 }, { jsonrpc: '2.0', id: 1, method: 5 }, { jsonrpc: '2.0', id: 1, method: 'x', params: 'p' }]) {
      expect(codeOf(() => classifyMessage(bad)), JSON.stringify(bad)).toBe('invalid_request');
    }
  });
});

describe('classifyMessage: a request method without an id', () => {
  it('is named as the request, with no id member, and only notifications/… are notifications', () => {
    const call = classifyMessage({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'wipe', arguments: {} } });
    expect(call).toMatchObject({ method: 'tools/call', kind: 'tool', target: 'wipe' });
    for (const method of ['tools/list', 'tools/call', 'initialize', 'tasks/get', 'x/custom']) {
      expect(Object.hasOwn(classifyMessage({ jsonrpc: '2.0', method, params: {} }), 'id'), method).toBe(false);
    }
    expect(classifyMessage({ jsonrpc: '2.0', method: 'tools/list' })).toEqual({ method: 'tools/list', kind: 'list', list: 'tools' });
    expect(classifyMessage({ jsonrpc: '2.0', method: 'notifications/initialized' })).toEqual({ method: 'notifications/initialized', kind: 'notification' });
    expect(classifyMessage({ jsonrpc: '2.0', id: 3, method: 'tools/list' })).toEqual({ method: 'tools/list', id: 3, kind: 'list', list: 'tools' });
  });
});

describe('classifyBody', () => {
  it('parses a batch into one action per message', () => {
    const body = classifyBody(JSON.stringify([request('tools/list', undefined, 1), request('tools/call', { name: 'x' }, 2)]));
    expect(body.batch).toBe(true);
    expect(body.actions.map((a) => a.kind)).toEqual(['list', 'tool']);
  });
  it('answers malformed JSON with parse_error', () => {
    expect(codeOf(() => classifyBody('{"jsonrpc":'))).toBe('parse_error');
    expect(codeOf(() => classifyBody('<html>'))).toBe('parse_error');
    expect(codeOf(() => classifyBody(''))).toBe('parse_error');
  });
  it('refuses an empty batch', () => {
    expect(codeOf(() => classifyBody('[]'))).toBe('invalid_request');
  });
  it('refuses JSON nested deeper than the limit, without recursion', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(codeOf(() => classifyBody(deep))).toBe('parse_error');
    const args = { a: JSON.parse(`${'['.repeat(70)}1${']'.repeat(70)}`) as unknown };
    expect(codeOf(() => classifyBody(JSON.stringify(request('tools/call', { name: 'x', arguments: args }))))).toBe('parse_error');
    expect(codeOf(() => classifyBody(JSON.stringify(request('tools/call', { name: 'x', arguments: args })), { maxJsonDepth: 80 }))).toBeUndefined();
  });
  it('refuses a body parsed before the pipeline (express.json() first) nested deeper than the limit, counted as the text is, and a very deep one without recursion', () => {
    const nest = (levels: number): unknown => JSON.parse(`${'['.repeat(levels)}1${']'.repeat(levels)}`);
    // The message is one level, `params` two, `arguments` three: `a` holds the rest.
    const at = (levels: number) => request('tools/call', { name: 'x', arguments: { a: nest(levels) } });
    expect(codeOf(() => classifyParsed(at(61)))).toBeUndefined();
    expect(codeOf(() => classifyParsed(at(62)))).toBe('parse_error');
    // The same limit as the text's, level for level.
    expect(codeOf(() => classifyBody(JSON.stringify(at(61))))).toBeUndefined();
    expect(codeOf(() => classifyBody(JSON.stringify(at(62))))).toBe('parse_error');
    expect(codeOf(() => classifyParsed(at(62), { maxJsonDepth: 65 }))).toBeUndefined();
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(codeOf(() => classifyParsed(deep))).toBe('parse_error');
  });
  it('is not fooled by brackets inside strings', () => {
    const body = JSON.stringify(request('tools/call', { name: 'x', arguments: { s: '[[[[[[[[[[{{{{{{{{\\"' } }));
    expect(codeOf(() => classifyBody(body, { maxJsonDepth: 4 }))).toBeUndefined();
  });
});

describe('checkMcpHeaders (2026-07-28 Mcp-Method / Mcp-Name)', () => {
  const call = classifyBody(JSON.stringify(request('tools/call', { name: 'echo', arguments: {} })));
  const read = classifyBody(JSON.stringify(request('resources/read', { uri: 'file:///a' })));
  const headers = (h: [string, string][]) => view({ headers: h });

  it('accepts headers that agree with the body, plain or base64-sentinel', () => {
    expect(codeOf(() => checkMcpHeaders(headers([['mcp-method', 'tools/call'], ['mcp-name', 'echo']]), call))).toBeUndefined();
    expect(codeOf(() => checkMcpHeaders(headers([['mcp-method', 'tools/call'], ['mcp-name', '=?base64?ZWNobw==?=']]), call))).toBeUndefined();
    expect(codeOf(() => checkMcpHeaders(headers([['mcp-method', 'resources/read'], ['mcp-name', 'file:///a']]), read))).toBeUndefined();
    expect(codeOf(() => checkMcpHeaders(headers([]), call))).toBeUndefined();
  });
  it('refuses a method header that disagrees with the body, answering with the request id', () => {
    expect(codeOf(() => checkMcpHeaders(headers([['mcp-method', 'tools/list']]), call))).toBe('header_mismatch');
    try {
      checkMcpHeaders(headers([['mcp-method', 'tools/list']]), call);
    } catch (error) {
      expect(JSON.parse(toErrorResponse(error).body)).toMatchObject({ id: 1, error: { code: -32020 } });
    }
  });
  it('refuses a name header that disagrees with the body, or cannot be decoded', () => {
    expect(codeOf(() => checkMcpHeaders(headers([['mcp-method', 'tools/call'], ['mcp-name', 'read_file']]), call))).toBe('header_mismatch');
    expect(codeOf(() => checkMcpHeaders(headers([['mcp-name', '=?base64?!!!?=']]), call))).toBe('header_mismatch');
    expect(codeOf(() => checkMcpHeaders(headers([['mcp-name', 'file:///b']]), read))).toBe('header_mismatch');
  });
  it('refuses the headers on a batch and repeated headers', () => {
    const batch = classifyBody(JSON.stringify([request('tools/call', { name: 'echo' })]));
    expect(codeOf(() => checkMcpHeaders(headers([['mcp-method', 'tools/call']]), batch))).toBe('header_mismatch');
    expect(codeOf(() => checkMcpHeaders(headers([['mcp-method', 'tools/call'], ['mcp-method', 'tools/call']]), call))).toBe('header_mismatch');
  });
  it('decodes the sentinel strictly', () => {
    expect(decodeMcpHeaderValue('=?base64?w6k=?=')).toBe('é');
    expect(decodeMcpHeaderValue('=?base64?/w==?=')).toBeUndefined();
    expect(decodeMcpHeaderValue('plain')).toBe('plain');
  });
});

describe('member names that differ only in case (a parser differential)', () => {
  describe('Security', () => {
    it.each([
      ['method', { jsonrpc: '2.0', id: 1, method: 'tools/list', Method: 'tools/call', params: { name: 'rm' } }, '$', 'method', 'Method'],
      ['params', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_x' }, PARAMS: { name: 'rm' } }, '$', 'params', 'PARAMS'],
      ['a tool name', request('tools/call', { name: 'read_x', Name: 'rm' }), '$.params', 'name', 'Name'],
      ['a resource ref', request('completion/complete', { ref: { type: 'ref/resource', uri: 'file:///ok', URI: 'file:///etc/shadow' }, argument: { name: 'a', value: '' } }), '$.params.ref', 'uri', 'URI'],
      ['an argument', request('tools/call', { name: 'write', arguments: { path: '/tmp/x', Path: '/etc/passwd' } }), '$.params.arguments', 'path', 'Path'],
      ['Go\'s long s (ſ folds to S)', { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {}, ['paramſ']: { name: 'rm' } }, '$', 'params', 'paramſ'],
      ['the Kelvin sign (folds to K)', request('tools/call', { name: 'x', arguments: { key: 'a', ['\u212Aey']: 'b' } }), '$.params.arguments', 'key', '\u212Aey'],
      ['a dotted capital I (İ: its simple lower case is i)', request('tools/call', { name: 'x', arguments: { id: 'a', ['\u0130d']: 'b' } }), '$.params.arguments', 'id', '\u0130d'],
    ])('refuses a message with two members that Go folds together: %s', (_what, message, path, first, second) => {
      let error: unknown;
      try {
        classifyBody(JSON.stringify(message));
      } catch (e) {
        error = e;
      }
      expect(codeOf(() => classifyBody(JSON.stringify(message)))).toBe('invalid_request');
      const response = toErrorResponse(error);
      expect(response.status).toBe(400);
      expect(JSON.parse(response.body)).toMatchObject({ jsonrpc: '2.0', error: { code: -32600 } });
      expect((JSON.parse(response.body) as { error: { message: string } }).error.message).toContain(`${path} has members ${JSON.stringify(first)} and ${JSON.stringify(second)}`);
    });

    it('finds them in any message of a batch, deep in arrays too', () => {
      const deep = request('tools/call', { name: 'x', arguments: { list: [{ a: 1 }, { b: 1, B: 2 }] } }, 2);
      expect(codeOf(() => classifyBody(JSON.stringify([request('tools/list'), deep])))).toBe('invalid_request');
      let message = '';
      try {
        classifyBody(JSON.stringify([request('tools/list'), deep]));
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toContain('$[1].params.arguments.list[1] has members "b" and "B"');
    });

    it('refuses exactly the bodies where some object has two names folding together (property)', () => {
      // Names from a small set, several of which fold together (ſ folds to S); objects nested in
      // objects and arrays, as arguments.
      const name = fc.constantFrom('id', 'Id', 'ID', 'path', 'Path', 'x', 'ſ', 's', 'S', 'ab');
      const { tree } = fc.letrec((tie) => ({
        tree: fc.oneof({ depthSize: 'small' }, fc.constant(1), fc.array(tie('tree'), { maxLength: 3 }), fc.dictionary(name, tie('tree'), { maxKeys: 4 })),
      }));
      const fold = (key: string): string => key.replaceAll('ſ', 's').toUpperCase();
      const clash = (value: unknown): boolean => {
        if (Array.isArray(value)) return value.some(clash);
        if (typeof value !== 'object' || value === null) return false;
        const folded = Object.keys(value).map(fold);
        return new Set(folded).size !== folded.length || Object.values(value).some(clash);
      };
      fc.assert(
        fc.property(tree, (args) => {
          const body = JSON.stringify(request('tools/call', { name: 'x', arguments: args }));
          expect(codeOf(() => classifyBody(body))).toBe(clash(args) ? 'invalid_request' : undefined);
        }),
        { numRuns: 2000 },
      );
    });

    it('lets through names that differ in more than case, and a lone name in another case', () => {
      for (const message of [
        request('tools/call', { name: 'x', arguments: { Path: '/tmp', path2: 'a', PATH_X: 'b', straße: 1, strasse: 2 } }),
        request('tools/call', { name: 'x', arguments: { camelCase: 1, camel_case: 2 } }),
        request('tools/call', { name: 'x', arguments: { a: { A: 1 }, b: { a: 1 } } }),
        request('tools/call', { name: 'x', Arguments: { a: 1 } }),
      ]) {
        expect(codeOf(() => classifyBody(JSON.stringify(message))), JSON.stringify(message)).toBeUndefined();
      }
    });
  });
});

describe('numbers that would not reach the server as sent', () => {
  describe('Security', () => {
    it('refuses an integer a double cannot hold exactly, and a number beyond a double, naming it', () => {
      for (const [text, number] of [
        ['{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pay","arguments":{"account":12345678901234567890}}}', '12345678901234567890'],
        ['{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}', '9007199254740993'],
        ['{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[1,-18446744073709551615]}}}', '-18446744073709551615'],
        ['{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":1E+400}}}', '1E+400'],
      ] as const) {
        // What the gateway would have sent: the number changed.
        expect(JSON.stringify(JSON.parse(text))).not.toContain(number.replace('E+', 'e+'));
        let message = '';
        try {
          classifyBody(text);
        } catch (e) {
          message = (e as Error).message;
        }
        expect(codeOf(() => classifyBody(text))).toBe('invalid_request');
        expect(message).toContain(`the number ${number} is beyond`);
      }
    });

    it('passes numbers a double holds as written, and digits inside strings', () => {
      for (const text of [
        '{"jsonrpc":"2.0","id":9007199254740991,"method":"ping"}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":9007199254740992,"b":-18446744073709551616,"c":1e308,"d":0.12345678901234567890,"e":"12345678901234567890","f":"1e400"}}}',
      ]) {
        expect(codeOf(() => classifyBody(text)), text).toBeUndefined();
      }
    });

    it('finds an integer exactly when a double would change it (property)', () => {
      fc.assert(
        fc.property(fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }), fc.boolean(), (n, quoted) => {
          const literal = n.toString();
          const text = `{"a":[${quoted ? `"${literal}"` : literal}]}`;
          const changed = !quoted && BigInt(Number(literal)) !== n;
          expect(inexactNumber(text)).toBe(changed ? literal : undefined);
        }),
        { numRuns: 3000 },
      );
    });
  });
});
