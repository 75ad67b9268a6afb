/**
 * The memo behind list filtering must give `decide`'s answer whatever happened before: other
 * principals, other scopes, annotations learned or changed since, a server whose tools changed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Policy } from '../../src/authz/policy.js';
import { actionForItem, keptSignature, listItemDecider } from '../../src/mcp/list-decisions.js';
import type { ListFamily, Principal } from '../../src/types.js';
import { principal } from '../helpers.js';

const roles = { reader: ['read' as const], writer: ['write' as const], admin: ['delete' as const], nobody: { tools: { deny: ['*'] } } };
const scopes = { 'mcp:read': ['reader'], 'mcp:write': ['writer'], 'mcp:admin': ['admin'] };

function oauth(held: string[], granted: string[], scopeLimited = true): Principal {
  return { id: 'idp:a', kind: 'jwt', subject: 'a', roles: held, scopes: granted, claims: {}, scopeLimited };
}

describe('listItemDecider', () => {
  it('decides a tool afresh once its learned annotations change', () => {
    const policy = new Policy({ roles });
    const reader = principal(['reader']);
    policy.annotations.learn([{ name: 't', annotations: { readOnlyHint: true } }]);
    expect(listItemDecider(policy, reader, 'tools')('t')).toBe(true);
    policy.annotations.learnTexts([{ name: 't', annotations: '{"readOnlyHint":false}' }]);
    expect(listItemDecider(policy, reader, 'tools')('t')).toBe(false);
    policy.annotations.learn([{ name: 't', annotations: { readOnlyHint: true } }]);
    expect(listItemDecider(policy, reader, 'tools')('t')).toBe(true);
  });

  it('follows annotations read live from an SDK server', () => {
    const server = { _registeredTools: { t: { annotations: { readOnlyHint: true } } } as Record<string, { annotations: object }> };
    const policy = new Policy({ roles });
    policy.annotations.addServer(server);
    const reader = principal(['reader']);
    expect(listItemDecider(policy, reader, 'tools')('t')).toBe(true);
    server._registeredTools['t'] = { annotations: { readOnlyHint: false } };
    expect(listItemDecider(policy, reader, 'tools')('t')).toBe(false);
  });

  it('never answers one principal with another one’s answer (roles, scopes, scope limits)', () => {
    const policy = new Policy({ roles, scopes });
    policy.annotations.learn([{ name: 'drop' }, { name: 'look', annotations: { readOnlyHint: true } }]);
    const allowed = (p: Principal, name: string): boolean => listItemDecider(policy, p, 'tools')(name);
    expect(allowed(oauth(['admin'], ['mcp:admin']), 'drop')).toBe(true);
    expect(allowed(oauth(['admin'], ['mcp:read']), 'drop')).toBe(false);
    expect(allowed(oauth(['admin'], ['mcp:read'], false), 'drop')).toBe(true);
    expect(allowed(oauth(['admin', 'nobody'], ['mcp:admin']), 'drop')).toBe(false);
    expect(allowed(oauth(['admin'], ['mcp:admin']), 'drop')).toBe(true);
  });

  it('keeps families apart: a tool and a prompt of the same name', () => {
    const policy = new Policy({ roles: { r: { prompts: { allow: ['x'] } } } });
    expect(listItemDecider(policy, principal(['r']), 'prompts')('x')).toBe(true);
    expect(listItemDecider(policy, principal(['r']), 'tools')('x')).toBe(false);
  });

  it('agrees with decide for any sequence of principals, learnings and items', () => {
    const name = fc.constantFrom('a', 'b', 'c', 'x*', '..', 'file:///a', 'secret://k');
    const hints = fc.record({ readOnlyHint: fc.boolean(), destructiveHint: fc.boolean() }, { requiredKeys: [] });
    const who = fc.record({
      held: fc.subarray(['reader', 'writer', 'admin', 'nobody', 'ghost']),
      granted: fc.subarray(['mcp:read', 'mcp:write', 'mcp:admin', 'other']),
      limited: fc.boolean(),
    });
    const step = fc.oneof(
      fc.record({ learn: fc.array(fc.record({ name, annotations: fc.option(hints, { nil: undefined }) }), { maxLength: 3 }) }),
      fc.record({ who, family: fc.constantFrom<ListFamily>('tools', 'prompts', 'resources', 'resourceTemplates'), target: name }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 25 }), (steps) => {
        const policy = new Policy({ roles: { ...roles, files: { resources: { allow: ['file:///**'] }, prompts: { deny: ['a'] } } }, scopes });
        for (const s of steps) {
          if ('learn' in s) {
            policy.annotations.learnTexts(s.learn.map((t) => ({ name: t.name, annotations: t.annotations === undefined ? undefined : JSON.stringify(t.annotations) })));
            continue;
          }
          const p = oauth([...s.who.held, 'files'], s.who.granted, s.who.limited);
          expect(listItemDecider(policy, p, s.family)(s.target)).toBe(policy.decide(p, actionForItem(s.family, s.target)).allow);
        }
      }),
      { numRuns: 1500 },
    );
  });
});

describe('ToolAnnotationRegistry.learnTexts', () => {
  it('lets the last listing of a name win, as learn does, even when an earlier one is unchanged', () => {
    const policy = new Policy({ roles });
    policy.annotations.learnTexts([{ name: 't', annotations: '{"readOnlyHint":true}' }]);
    policy.annotations.learnTexts([
      { name: 't', annotations: '{"readOnlyHint":true}' },
      { name: 't', annotations: '{"readOnlyHint":false,"destructiveHint":false}' },
    ]);
    expect(policy.annotations.get('t')).toEqual({ readOnlyHint: false, destructiveHint: false });
  });

  it('learns nothing from a batch holding text that is not JSON', () => {
    const policy = new Policy({ roles });
    expect(() => policy.annotations.learnTexts([{ name: 'a', annotations: '{"readOnlyHint":true}' }, { name: 'b', annotations: '{"readOnly' }])).toThrow(SyntaxError);
    expect(policy.annotations.get('a')).toBeUndefined();
  });

  it('forgets the text when learn records the tool from an object, so equal text is read again', () => {
    const policy = new Policy({ roles });
    policy.annotations.learnTexts([{ name: 't', annotations: '{"readOnlyHint":true}' }]);
    policy.annotations.learn([{ name: 't', annotations: { readOnlyHint: false } }]);
    policy.annotations.learnTexts([{ name: 't', annotations: '{"readOnlyHint":true}' }]);
    expect(policy.annotations.get('t')).toEqual({ readOnlyHint: true });
  });
});

describe('ToolAnnotationRegistry.learnTextsOf', () => {
  const readOnly = '{"readOnlyHint":true}';
  const destructive = '{"readOnlyHint":false}';

  it('skips a list learned last when nothing was learned since, and learns it again when something was', () => {
    const policy = new Policy({ roles });
    const list = Object.freeze([{ name: 't', annotations: readOnly }]);
    let calls = 0;
    const tools = (): typeof list => {
      calls++;
      return list;
    };
    policy.annotations.learnTextsOf(list, tools);
    policy.annotations.learnTextsOf(list, tools);
    expect(calls).toBe(1);
    expect(policy.annotations.get('t')).toEqual({ readOnlyHint: true });
    // Another source changed 't' in between: the same list must put its text back.
    policy.annotations.learn([{ name: 't', annotations: { readOnlyHint: false } }]);
    expect(policy.annotations.get('t')).toEqual({ readOnlyHint: false });
    policy.annotations.learnTextsOf(list, tools);
    expect(calls).toBe(2);
    expect(policy.annotations.get('t')).toEqual({ readOnlyHint: true });
    // And through learnTexts from another list.
    policy.annotations.learnTexts([{ name: 't', annotations: destructive }]);
    policy.annotations.learnTextsOf(list, tools);
    expect(calls).toBe(3);
    expect(policy.annotations.get('t')).toEqual({ readOnlyHint: true });
  });

  it('learns a different list object even with the same texts', () => {
    const policy = new Policy({ roles });
    let calls = 0;
    policy.annotations.learnTextsOf([{ name: 't', annotations: readOnly }], () => (calls++, [{ name: 't', annotations: readOnly }]));
    policy.annotations.learnTextsOf([{ name: 't', annotations: readOnly }], () => (calls++, [{ name: 't', annotations: readOnly }]));
    expect(calls).toBe(2);
  });
});

describe('keptSignature', () => {
  const direct = (policy: Policy, p: Principal, family: ListFamily, items: readonly { key?: string }[]): string =>
    items.map((item) => (item.key !== undefined && policy.decide(p, actionForItem(family, item.key)).allow ? '1' : '0')).join('');

  it("is decide's answer per item whatever was learned, by whom, in between (one remembered items array)", () => {
    const names = ['a', 'b', 'c'];
    const hints = fc.constantFrom(undefined, '{"readOnlyHint":true}', '{"readOnlyHint":false,"destructiveHint":false}', '{}');
    const step = fc.oneof(
      fc.record({ learnTexts: fc.array(fc.record({ name: fc.constantFrom(...names), annotations: hints }), { maxLength: 3 }) }),
      fc.record({ learn: fc.array(fc.record({ name: fc.constantFrom(...names), readOnly: fc.boolean() }), { maxLength: 3 }) }),
      // Few principals, so the same one comes back after something was learned.
      fc.record({ who: fc.constantFrom({ held: ['reader'], granted: [], limited: false }, { held: ['reader', 'admin'], granted: ['mcp:read'], limited: true }, { held: ['writer'], granted: [], limited: false }) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 25 }), (steps) => {
        const policy = new Policy({ roles, scopes });
        const items = Object.freeze([{ key: 'a' }, { key: 'b' }, {}, { key: 'c' }, { key: 'a' }]);
        for (const s of steps) {
          if ('learnTexts' in s) policy.annotations.learnTexts(s.learnTexts.map((t) => ({ name: t.name, ...(t.annotations === undefined ? {} : { annotations: t.annotations }) })));
          else if ('learn' in s) policy.annotations.learn(s.learn.map((t) => ({ name: t.name, annotations: { readOnlyHint: t.readOnly } })));
          else {
            const p = oauth([...s.who.held], [...s.who.granted], s.who.limited);
            expect(keptSignature(policy, p, 'tools', items)).toBe(direct(policy, p, 'tools', items));
          }
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('follows an SDK server read live (no stamp: asked every time)', () => {
    const server = { _registeredTools: { t: { annotations: { readOnlyHint: true } } } as Record<string, { annotations: object }> };
    const policy = new Policy({ roles });
    policy.annotations.addServer(server);
    expect(policy.annotations.stamp).toBeUndefined();
    const items = Object.freeze([{ key: 't' }]);
    const reader = principal(['reader']);
    expect(keptSignature(policy, reader, 'tools', items)).toBe('1');
    server._registeredTools['t'] = { annotations: { readOnlyHint: false } };
    expect(keptSignature(policy, reader, 'tools', items)).toBe('0');
  });
});
