/**
 * Where sealed audit batches go: the database (default, chained inside the store's transaction), a
 * JSONL file (chained in the file), or stdout (chained per process run).
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AuditEvent } from '@mcp-warden/core';
import type { AuditStore, StoredAuditEvent } from '../store/types.js';
import { GENESIS_HASH, sealEvents } from './chain.js';

/** A destination for batches of events. */
export interface AuditBatchSink {
  readonly name: string;
  writeBatch(events: readonly AuditEvent[]): Promise<void>;
}

/** The database sink: the store seals the batch after its chain head in one transaction. */
export function databaseSink(store: AuditStore): AuditBatchSink {
  return { name: 'database', writeBatch: async (events) => void (await store.append(events)) };
}

/** Reads the last event of a JSONL audit file, to continue its chain. */
async function lastLine(path: string): Promise<StoredAuditEvent | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const lines = text.trimEnd().split('\n');
  const last = lines[lines.length - 1];
  return last === undefined || last === '' ? undefined : (JSON.parse(last) as StoredAuditEvent);
}

/** A JSONL file sink: one sealed event per line, continuing the file's own chain across restarts. */
export function jsonlFileSink(path: string): AuditBatchSink {
  let head: { seq: number; hash: string } | undefined;
  return {
    name: `jsonl:${path}`,
    async writeBatch(events) {
      if (head === undefined) {
        await mkdir(dirname(path), { recursive: true });
        const last = await lastLine(path);
        head = last === undefined ? { seq: 0, hash: GENESIS_HASH } : { seq: last.seq, hash: last.hash };
      }
      const sealed = sealEvents(head, events);
      await appendFile(path, sealed.map((e) => `${JSON.stringify(e)}\n`).join(''), { mode: 0o600 });
      const last = sealed[sealed.length - 1];
      if (last !== undefined) head = { seq: last.seq, hash: last.hash };
    },
  };
}

/** A stdout sink: JSON lines, chained from genesis for each run of the process. */
export function stdoutSink(write: (text: string) => void = (t) => void process.stdout.write(t)): AuditBatchSink {
  let head = { seq: 0, hash: GENESIS_HASH };
  return {
    name: 'stdout',
    async writeBatch(events) {
      const sealed = sealEvents(head, events);
      write(sealed.map((e) => `${JSON.stringify({ audit: e })}\n`).join(''));
      const last = sealed[sealed.length - 1];
      if (last !== undefined) head = { seq: last.seq, hash: last.hash };
    },
  };
}
