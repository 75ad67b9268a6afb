import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEvent } from '@mcp-warden/core';
import type { AuditBatchSink } from '../../src/audit/sinks.js';
import { AuditQueue } from '../../src/audit/writer.js';

const event = (i: number): AuditEvent => ({
  time: new Date(1_700_000_000_000 + i).toISOString(),
  requestId: `r${i}`,
  method: 'tools/call',
  kind: 'tool',
  decision: 'allow',
  rule: 'r',
  reason: 'x',
  latencyMicros: 1,
});

function collector(): AuditBatchSink & { batches: AuditEvent[][]; fail: boolean } {
  const sink = {
    name: 'test',
    batches: [] as AuditEvent[][],
    fail: false,
    async writeBatch(events: readonly AuditEvent[]) {
      if (sink.fail) throw new Error('sink down');
      sink.batches.push([...events]);
    },
  };
  return sink;
}

const queues: AuditQueue[] = [];
function queue(options: ConstructorParameters<typeof AuditQueue>[0]): AuditQueue {
  const q = new AuditQueue(options);
  queues.push(q);
  return q;
}
afterEach(async () => {
  for (const q of queues.splice(0)) await q.close().catch(() => {});
});

describe('AuditQueue', () => {
  it('writes in batches of at most batchSize, in order', async () => {
    const sink = collector();
    const q = queue({ sinks: [sink], batchSize: 3, flushIntervalMs: 10_000 });
    for (let i = 0; i < 7; i++) q.write(event(i));
    await q.close();
    expect(sink.batches.map((b) => b.length)).toEqual([3, 3, 1]);
    expect(sink.batches.flat().map((e) => e.requestId)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6']);
  });

  it('flushes on its timer without being asked', async () => {
    const sink = collector();
    const q = queue({ sinks: [sink], flushIntervalMs: 20 });
    q.write(event(1));
    await new Promise((r) => setTimeout(r, 120));
    expect(sink.batches.flat()).toHaveLength(1);
  });

  it('stops accepting when full (reject), and accepts again once drained', async () => {
    const sink = collector();
    const q = queue({ sinks: [sink], capacity: 2, batchSize: 100, flushIntervalMs: 10_000 });
    q.write(event(1));
    expect(q.accepting()).toBe(true);
    q.write(event(2));
    expect(q.accepting()).toBe(false);
    // Events of requests already admitted are still kept, never dropped.
    q.write(event(3));
    await q.flush();
    expect(q.accepting()).toBe(true);
    expect(sink.batches.flat()).toHaveLength(3);
  });

  it('drops and counts when told to (drop), always accepting', async () => {
    const sink = collector();
    const q = queue({ sinks: [sink], capacity: 2, batchSize: 100, flushIntervalMs: 10_000, onFull: 'drop' });
    for (let i = 0; i < 5; i++) q.write(event(i));
    expect(q.accepting()).toBe(true);
    expect(q.stats()).toEqual({ pending: 2, dropped: 3 });
  });

  it('keeps a failed batch, reports the error, retries it first, and counts it against capacity', async () => {
    const sink = collector();
    const errors: string[] = [];
    const q = queue({ sinks: [sink], capacity: 3, batchSize: 2, flushIntervalMs: 10_000, onError: (e, name) => errors.push(`${name}: ${(e as Error).message}`) });
    sink.fail = true;
    q.write(event(1));
    q.write(event(2));
    await q.flush();
    expect(errors).toEqual(['test: sink down']);
    expect(q.stats().pending).toBe(2);
    q.write(event(3));
    expect(q.accepting()).toBe(false);
    sink.fail = false;
    await q.flush();
    expect(sink.batches.flat().map((e) => e.requestId)).toEqual(['r1', 'r2', 'r3']);
    expect(q.accepting()).toBe(true);
  });

  it('writes to every sink; one failing sink does not starve the others', async () => {
    const good = collector();
    const bad = collector();
    bad.fail = true;
    const q = queue({ sinks: [good, bad], flushIntervalMs: 10_000 });
    q.write(event(1));
    await q.flush();
    expect(good.batches.flat()).toHaveLength(1);
    bad.fail = false;
    await q.flush();
    expect(bad.batches.flat()).toHaveLength(1);
    expect(good.batches.flat()).toHaveLength(1);
  });

  it('needs a sink', () => {
    expect(() => new AuditQueue({ sinks: [] })).toThrow(/at least one sink/);
  });
});
