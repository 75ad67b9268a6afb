/** `mcp-warden audit …`: tail, verify, export and prune the hash-chained audit log. */
import { createReadStream, createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { parseDuration } from '../../config/duration.js';
import { type ChainVerdict, verifyChain } from '../../audit/verify.js';
import { GENESIS_HASH } from '../../audit/chain.js';
import type { AuditStore, StoredAuditEvent } from '../../store/types.js';
import { type GlobalOptions, readConfig, withStore } from '../context.js';
import { ExitCode, UserError, colour, endQuietlyWhenPipeCloses, out, printJson } from '../output.js';

function sinceOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms !== undefined) return Date.now() - ms;
  const time = Date.parse(value);
  if (Number.isNaN(time)) throw new UserError(`--since: "${value}" is neither a duration (1h, 30m) nor a time (2026-11-28T10:00:00Z)`);
  return time;
}

function line(e: StoredAuditEvent): string {
  const decision = e.decision === 'allow' ? colour.green('allow') : colour.red('deny ');
  const who = e.principal === undefined ? '-' : `${e.principal.id}(${e.principal.kind})`;
  return `${colour.dim(e.time)} ${decision} ${who} ${e.method}${e.target === undefined ? '' : ` ${e.target}`}  ${colour.dim(`${e.rule} — ${e.reason}`)}`;
}

/** Reads a whole chain in seq order, a page at a time. */
async function* allEvents(store: AuditStore): AsyncGenerator<StoredAuditEvent> {
  // From the first row whatever its seq, not from seq 1: a row forged at 0 or below is shown by
  // `tail`, and `verify` must see it too (it is no link of the chain).
  let after: number | undefined;
  for (;;) {
    const page = await store.query({ ...(after === undefined ? {} : { afterSeq: after }), limit: 2000 });
    if (page.length === 0) return;
    yield* page;
    after = (page[page.length - 1] as StoredAuditEvent).seq;
  }
}

async function* fileEvents(path: string): AsyncGenerator<StoredAuditEvent> {
  const input = createReadStream(path);
  // A file that cannot be read is the user's to fix (exit 2), not an internal error.
  await new Promise<void>((resolve, reject) => {
    input.once('open', () => resolve());
    input.once('error', (error: NodeJS.ErrnoException) => reject(new UserError(`--file: cannot read ${path} (${error.code ?? error.message})`)));
  });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  for await (const text of lines) {
    n++;
    if (text.trim() === '') continue;
    try {
      yield JSON.parse(text) as StoredAuditEvent;
    } catch {
      throw new UserError(`${path}: line ${n} is not JSON`, ExitCode.CheckFailed);
    }
  }
}

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('read and check the audit log');
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();

  audit
    .command('tail')
    .description('print recent decisions, oldest first; -f keeps following')
    .option('-f, --follow', 'keep printing new events until interrupted')
    .option('--principal <id>', 'only this principal, as audited: a key id, a static token id, or <issuer name>:<subject> for OAuth tokens')
    .option('--decision <decision>', 'only allow or deny')
    .option('--since <when>', 'only events since a duration ago (1h) or a time')
    .option('-n, --limit <n>', 'how many recent events', '20')
    .option('--json', 'one JSON object per line')
    .action(async (options: { follow?: boolean; principal?: string; decision?: string; since?: string; limit: string; json?: boolean }) => {
      endQuietlyWhenPipeCloses();
      if (options.decision !== undefined && options.decision !== 'allow' && options.decision !== 'deny') {
        throw new UserError(`--decision: expected allow or deny, got "${options.decision}"`);
      }
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit <= 0) throw new UserError(`--limit: expected a positive whole number, got "${options.limit}"`);
      const since = sinceOption(options.since);
      const filter = {
        ...(options.principal === undefined ? {} : { principalId: options.principal }),
        ...(options.decision === undefined ? {} : { decision: options.decision as 'allow' | 'deny' }),
        ...(since === undefined ? {} : { since }),
      };
      const print = (e: StoredAuditEvent) => out(options.json === true ? JSON.stringify(e) : line(e));
      await withStore(globals(), async (store) => {
        const recent = (await store.audit.query({ ...filter, newestFirst: true, limit })).reverse();
        recent.forEach(print);
        if (options.follow !== true) return;
        let after = recent.at(-1)?.seq ?? (await store.audit.head()).seq;
        let stop = false;
        process.once('SIGINT', () => (stop = true));
        process.once('SIGTERM', () => (stop = true));
        while (!stop) {
          await new Promise((resolve) => setTimeout(resolve, 500));
          const fresh = await store.audit.query({ ...filter, afterSeq: after });
          fresh.forEach(print);
          after = fresh.at(-1)?.seq ?? after;
        }
      });
    });

  audit
    .command('verify')
    .description('check the hash chain; names the first changed, missing or reordered event (exit 1)')
    .option('--file <path>', 'check a JSONL audit file instead of the database')
    .option('--json', 'print JSON')
    .action(async (options: { file?: string; json?: boolean }) => {
      let verdict;
      if (options.file !== undefined) {
        const events: StoredAuditEvent[] = [];
        for await (const e of fileEvents(options.file)) events.push(e);
        const last = events.at(-1);
        const first = events[0];
        const head = {
          seq: last?.seq ?? 0,
          hash: last?.hash ?? GENESIS_HASH,
          prunedSeq: first === undefined ? 0 : first.seq - 1,
          prunedHash: first?.prevHash ?? GENESIS_HASH,
        };
        verdict = await verifyChain(head, (async function* () { yield* events; })());
      } else {
        verdict = await withStore(globals(), async (store) => {
          const check = async (): Promise<{ verdict: Awaited<ReturnType<typeof verifyChain>>; prunedSeq: number }> => {
            const head = await store.audit.head();
            return { verdict: await verifyChain(head, allEvents(store.audit), () => store.audit.head()), prunedSeq: head.prunedSeq };
          };
          const first = await check();
          // A prune that ran meanwhile removed what the walk expected: checked once more, from its anchor.
          const chain = !first.verdict.ok && (await store.audit.head()).prunedSeq !== first.prunedSeq ? (await check()).verdict : first.verdict;
          if (!chain.ok) return chain;
          // The stored time in ms is no part of the hash, but `tail --since` and `prune` go by it.
          const mismatch = await store.audit.firstTimeMismatch?.();
          if (mismatch === undefined) return chain;
          const broken: ChainVerdict = {
            ok: false,
            events: chain.events,
            seq: mismatch,
            problem: 'changed',
            message: `event ${mismatch} was changed: its stored time in ms (what tail --since and prune read) is not its time`,
          };
          return broken;
        });
      }
      if (options.json === true) printJson(verdict);
      else if (verdict.ok) out(`${colour.green('ok')}: ${verdict.events} events, chain intact; head ${verdict.head.seq} ${verdict.head.hash}`);
      else out(`${colour.red('BROKEN')} at event ${verdict.seq} (${verdict.problem}): ${verdict.message}`);
      if (!verdict.ok) process.exitCode = ExitCode.CheckFailed;
    });

  audit
    .command('export')
    .description('write the audit log as JSON lines (with seq and hashes, verifiable with verify --file)')
    .requiredOption('--format <format>', 'jsonl')
    .option('--since <when>', 'only events since a duration ago or a time (the exported chain then starts later)')
    .option('-o, --output <file>', 'write to a file instead of stdout')
    .action(async (options: { format: string; since?: string; output?: string }) => {
      if (options.output === undefined) endQuietlyWhenPipeCloses();
      if (options.format !== 'jsonl') throw new UserError(`--format: only jsonl is supported, got "${options.format}"`);
      const since = sinceOption(options.since);
      const stream: NodeJS.WritableStream = options.output === undefined ? process.stdout : createWriteStream(options.output, { mode: 0o600 });
      await withStore(globals(), async (store) => {
        for await (const e of allEvents(store.audit)) {
          if (since !== undefined && Date.parse(e.time) < since) continue;
          if (!stream.write(`${JSON.stringify(e)}\n`)) await new Promise<void>((resolve) => stream.once('drain', () => resolve()));
        }
      });
      if (stream !== process.stdout) await new Promise<void>((resolve) => stream.end(() => resolve()));
    });

  audit
    .command('prune')
    .description('remove events older than the retention (config audit.retention, or --older-than); the chain stays checkable')
    .option('--older-than <duration>', 'e.g. 90d')
    .action(async (options: { olderThan?: string }) => {
      const { config } = readConfig(globals());
      const window = options.olderThan === undefined ? config.audit.retention : parseDuration(options.olderThan);
      if (window === undefined) {
        throw new UserError(options.olderThan === undefined ? 'no retention configured: set audit.retention in the config or pass --older-than 90d' : `--older-than: "${options.olderThan}" is not a duration`);
      }
      const removed = await withStore(globals(), (store) => store.audit.prune(Date.now() - window));
      out(`Removed ${removed} event(s) older than ${new Date(Date.now() - window).toISOString()}.`);
    });
}
