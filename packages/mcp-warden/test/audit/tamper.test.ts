/**
 * Tamper evidence: change, delete, reorder or re-hash one audit row (SQLite, edited behind the
 * store's back) or one line of a JSONL file; `mcp-warden audit verify` fails and names the event.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '@mcp-warden/core';
import { GENESIS_HASH, eventHash } from '../../src/audit/chain.js';
import { verifyChain } from '../../src/audit/verify.js';
import { jsonlFileSink } from '../../src/audit/sinks.js';
import { createSqliteStore } from '../../src/store/sql/sql-store.js';
import { cli } from '../cli/run-cli.js';

function event(i: number): AuditEvent {
  return {
    time: new Date(Date.UTC(2026, 10, 28, 12, 0, i)).toISOString(),
    requestId: `req-${i}`,
    principal: { id: 'reader', kind: 'api-key' },
    method: 'tools/call',
    kind: 'tool',
    target: `tool_${i}`,
    decision: i % 3 === 0 ? 'deny' : 'allow',
    rule: 'role:reader verb:read',
    reason: `event number ${i}`,
    latencyMicros: 10 + i,
  };
}

describe('Security: audit tamper evidence', () => {
  let dir: string;
  let pristine: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-warden-tamper-'));
    pristine = join(dir, 'pristine.db');
    const store = createSqliteStore({ path: pristine });
    await store.migrate();
    await store.audit.append(Array.from({ length: 6 }, (_, i) => event(i + 1)));
    await store.audit.append(Array.from({ length: 4 }, (_, i) => event(i + 7)));
    await store.close();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Copies the pristine database, edits it with raw SQL, and runs the CLI's verify on it. */
  async function verifyAfter(name: string, edit: (db: BetterSqlite3.Database) => void) {
    const path = join(dir, `${name}.db`);
    copyFileSync(pristine, path);
    const db = new BetterSqlite3(path);
    edit(db);
    db.close();
    const config = join(dir, `${name}.yaml`);
    writeFileSync(config, `store: { type: sqlite, path: ${name}.db }\n`);
    return cli(dir, ['--config', config, 'audit', 'verify', '--json']);
  }

  it('passes on the untouched log', async () => {
    const result = await verifyAfter('untouched', () => {});
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, events: 10, head: { seq: 10 } });
  });

  it('names a changed event', async () => {
    const result = await verifyAfter('changed', (db) => db.prepare("update mcpw_audit_events set decision = 'allow' where seq = 3").run());
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, seq: 3, problem: 'changed' });
  });

  it('names a deleted event', async () => {
    const result = await verifyAfter('deleted', (db) => db.prepare('delete from mcpw_audit_events where seq = 5').run());
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, seq: 5, problem: 'missing' });
  });

  it('names reordered events', async () => {
    const result = await verifyAfter('reordered', (db) => {
      db.prepare('update mcpw_audit_events set seq = -1 where seq = 4').run();
      db.prepare('update mcpw_audit_events set seq = 4 where seq = 7').run();
      db.prepare('update mcpw_audit_events set seq = 7 where seq = -1').run();
    });
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, seq: 4 });
  });

  it('names the break when a changed event was re-hashed to hide the change', async () => {
    const result = await verifyAfter('rehashed', (db) => {
      const row = db.prepare('select * from mcpw_audit_events where seq = 6').get() as Record<string, unknown>;
      const forged: AuditEvent = { ...event(6), decision: 'allow', reason: 'nothing to see' };
      db.prepare('update mcpw_audit_events set decision = ?, reason = ?, hash = ? where seq = 6').run(
        forged.decision,
        forged.reason,
        eventHash(row['prev_hash'] as string, 6, forged),
      );
    });
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, seq: 7, problem: 'broken-link' });
  });

  it('names events cut from the end of the log', async () => {
    const result = await verifyAfter('truncated', (db) => db.prepare('delete from mcpw_audit_events where seq >= 9').run());
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, seq: 9, problem: 'head-mismatch' });
  });

  it('names an event forged outside the chain, at a seq before its start (0 or less, down to what a 64-bit integer holds)', async () => {
    for (const seq of [0, -7, -9007199254740992]) {
      const result = await verifyAfter(`outside${-seq}`, (db) =>
        db.prepare(`insert into mcpw_audit_events select ${seq}, time, time_ms, request_id, 'admin-forged', principal_kind, upstream, method, kind, target, 'allow', rule, 'forged', latency_micros, client_address, user_agent, credential_ref, arguments, prev_hash, hash from mcpw_audit_events where seq = 1`).run(),
      );
      expect(result.code, String(seq)).toBe(1);
      expect(JSON.parse(result.stdout), String(seq)).toMatchObject({ ok: false, seq, problem: 'outside' });
    }
  });

  it('names an event whose stored time in ms was moved (which hides it from tail --since and lets prune take it)', async () => {
    const result = await verifyAfter('time-moved', (db) => db.prepare('update mcpw_audit_events set time_ms = 0 where seq = 4').run());
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, seq: 4, problem: 'changed', message: expect.stringContaining('stored time in ms') });
  });

  it('names a head rewritten to name another event than the one at its seq', async () => {
    const result = await verifyAfter('head-rewritten', (db) => db.prepare("update mcpw_audit_head set hash = (select hash from mcpw_audit_events where seq = 9) where id = 1").run());
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, seq: 10, problem: 'head-mismatch' });
  });

  it('passes while a gateway goes on writing: events after the head it read are checked as the chain goes on, up to the head read again', async () => {
    const store = createSqliteStore({ path: join(dir, 'pristine.db') });
    try {
      const all = await store.audit.query({});
      const at = (seq: number) => all[seq - 1] as (typeof all)[number];
      // The head as it was when event 6 was the last: events 7..10 were written after it was read,
      // and the head read again afterwards (the store's own) covers them.
      const early = { seq: 6, hash: at(6).hash, prunedSeq: 0, prunedHash: GENESIS_HASH };
      const events = async function* (list: typeof all) {
        yield* list;
      };
      const again = () => store.audit.head();
      expect(await verifyChain(early, events(all), again)).toEqual({ ok: true, events: 10, head: { seq: 10, hash: at(10).hash } });
      // What follows the head is checked as every other event: a changed one is still found.
      const changed = all.map((e) => (e.seq === 8 ? { ...e, decision: 'allow' as const, reason: 'edited' } : e));
      expect(await verifyChain(early, events(changed), again)).toMatchObject({ ok: false, seq: 8, problem: 'changed' });
      // The head must be the event at its seq.
      expect(await verifyChain({ ...early, hash: at(5).hash }, events(all), again)).toMatchObject({ ok: false, seq: 6, problem: 'head-mismatch' });
      // Events beyond the head read again were added without it.
      expect(await verifyChain(early, events(all), async () => early)).toMatchObject({ ok: false, seq: 7, problem: 'head-mismatch' });
    } finally {
      await store.close();
    }
  });

  it('names a well-hashed event appended behind the store\'s back, without moving the head', async () => {
    const result = await verifyAfter('appended', (db) => {
      const last = db.prepare('select * from mcpw_audit_events where seq = 10').get() as Record<string, unknown>;
      const forged: AuditEvent = { ...event(11), principal: { id: 'mallory', kind: 'api-key' }, decision: 'allow', reason: 'forged' };
      db.prepare(
        "insert into mcpw_audit_events (seq, time, time_ms, request_id, principal_id, principal_kind, method, kind, target, decision, rule, reason, latency_micros, prev_hash, hash) values (11, ?, ?, ?, 'mallory', 'api-key', ?, ?, ?, 'allow', ?, 'forged', ?, ?, ?)",
      ).run(forged.time, Date.parse(forged.time), forged.requestId, forged.method, forged.kind, forged.target, forged.rule, forged.latencyMicros, last['hash'], eventHash(last['hash'] as string, 11, forged));
    });
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, seq: 11, problem: 'head-mismatch' });
  });

  it('prints the verdict for people too', async () => {
    const path = join(dir, 'people.yaml');
    copyFileSync(pristine, join(dir, 'people.db'));
    const db = new BetterSqlite3(join(dir, 'people.db'));
    db.prepare('delete from mcpw_audit_events where seq = 2').run();
    db.close();
    writeFileSync(path, 'store: { type: sqlite, path: people.db }\n');
    const result = await cli(dir, ['--config', path, 'audit', 'verify']);
    expect(result.stdout.trim()).toBe('BROKEN at event 2 (missing): event 2 is missing (the next event is 3)');
  });

  it('checks a JSONL audit file: intact, then with one line changed', async () => {
    const file = join(dir, 'audit.jsonl');
    const sink = jsonlFileSink(file);
    await sink.writeBatch([event(1), event(2), event(3)]);
    // A second sink on the same file continues its chain, as after a restart.
    await jsonlFileSink(file).writeBatch([event(4)]);
    expect((await cli(dir, ['audit', 'verify', '--file', file, '--json'])).code).toBe(0);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    lines[1] = lines[1]!.replace('event number 2', 'event number 22');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const result = await cli(dir, ['audit', 'verify', '--file', file, '--json']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, seq: 2, problem: 'changed' });
  });
});
