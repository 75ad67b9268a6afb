/**
 * A second process appending to a SQLite store, for the contract suite's concurrency test (two
 * gateways, or a gateway and the CLI, on one file). Run as `node --import tsx <this file> <db path>
 * <batches> <request id prefix>` from the repository root. It prints `ready` once the store is open,
 * waits for a line on stdin, prints `appending` after its first batch, and `done` after the last.
 */
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSqliteStore } from '../../src/store/sql/sql-store.js';
import { auditEvent } from './events.js';

const [path, batchesArg, prefix] = process.argv.slice(2);
if (path === undefined || batchesArg === undefined || prefix === undefined) {
  throw new TypeError('usage: sqlite-writer-process.ts <db path> <batches> <request id prefix>');
}
const store = createSqliteStore({ path, busyTimeoutMs: 10_000 });
process.stdout.write('ready\n');
await once(process.stdin, 'data');
for (let i = 0; i < Number(batchesArg); i++) {
  await store.audit.append([auditEvent({ requestId: `${prefix}-${i}-a` }), auditEvent({ requestId: `${prefix}-${i}-b` })]);
  if (i === 0) process.stdout.write('appending\n');
  // A gateway appends a batch per flush, not in a tight loop: give the other writer a chance at the lock.
  await sleep(1);
}
await store.close();
process.stdout.write('done\n');
process.stdin.destroy();
