/**
 * `npm run bench:list-filter`: what filtering one 1,000-tool `tools/list` answer costs the process that
 * filters it (the gateway relaying bytes, as in bench:gateway's scenario d), in one run:
 *
 *   parse      the general path (JSON.parse, filter, JSON.stringify, on the decoded text): the yardstick
 *   new text   a text never seen (the scan runs; annotations learned and the policy's answers about
 *              the tools are remembered from before, as in a gateway that has seen the list)
 *   same id    the text seen just before (a server answers the same list until it changes)
 *   id first, other length   the same list, the id first (as the Python SDK writes it) and of
 *              another length than the remembered text's (id 7 remembered, ids 10, 11, … asked)
 *   id last, other length    the same, the id last (as TypeScript SDK v1 writes it)
 *
 * Half the tools are hidden from the reader. Each path's output is checked once against the parse
 * path's before anything is timed, and each path runs one untimed round first (V8 compiles it).
 * It prints µs per list (median of the rounds) and each path's time as a fraction of the parse path's.
 * Environment: BENCH_ROUNDS (default 7), BENCH_LISTS (answers per round and path, default 100).
 */
import { Policy } from '../packages/core/src/authz/policy.js';
import { filterJsonBodyParsed, filterJsonChunks } from '../packages/core/src/mcp/filter.js';
import { forgetRecentScans } from '../packages/core/src/mcp/list-scan.js';
import type { JsonRpcId, ListFamily, Principal } from '../packages/core/src/types.js';
import { envNumber, median, table } from './common.js';

const ROUNDS = envNumber('BENCH_ROUNDS', 7);
const LISTS = envNumber('BENCH_LISTS', 100);

const tools = Array.from({ length: 1000 }, (_, i) => ({
  name: `tool_${String(i).padStart(4, '0')}`,
  description: `Tool number ${i}: ${'does something useful with its input. '.repeat(5)}`,
  inputSchema: { type: 'object', properties: { path: { type: 'string', description: 'A path' }, depth: { type: 'integer', minimum: 0 } }, required: ['path'] },
  annotations: { readOnlyHint: i % 2 === 0, title: `Tool ${i}` },
}));
const reader: Principal = { id: 'reader', kind: 'api-key', subject: 'reader', roles: ['reader'], scopes: [], claims: {} };
const policy = new Policy({ roles: { reader: { verbs: ['read'] } } });

const idFirst = (id: JsonRpcId): string => JSON.stringify({ jsonrpc: '2.0', id, result: { tools } });
const idLast = (id: JsonRpcId): string => JSON.stringify({ result: { tools }, jsonrpc: '2.0', id });
/** A text as the gateway holds it: UTF-8 bytes, one per code unit, in the 64 KiB chunks a socket gives. */
function chunksOf(text: string): string[] {
  const bytes = Buffer.from(text, 'utf8');
  const out: string[] = [];
  for (let i = 0; i < bytes.length; i += 65536) out.push(bytes.subarray(i, i + 65536).toString('latin1'));
  return out;
}
const listOf = (id: JsonRpcId): Map<JsonRpcId, ListFamily> => new Map([[id, 'tools']]);

interface Path {
  readonly name: string;
  /** The answers of one round: [id, text]. */
  readonly answers: readonly (readonly [JsonRpcId, string])[];
  /** Before each round (what is remembered). */
  readonly prepare?: () => void;
  /** The filtered answer as the path leaves it (text, or pieces of bytes), not joined: only checking joins it. */
  readonly filter: (id: JsonRpcId, text: string, chunks: readonly string[]) => string | readonly string[];
}

const asBytes = (id: JsonRpcId, chunks: readonly string[]): readonly string[] => {
  const out = filterJsonChunks(chunks, listOf(id), reader, policy, true);
  if (out === undefined) throw new Error('nothing was filtered');
  return out;
};
/** A path's output as text. */
const textOf = (out: string | readonly string[]): string => (typeof out === 'string' ? out : Buffer.from(out.join(''), 'latin1').toString('utf8'));
const numbered = (make: (id: JsonRpcId) => string, from: number): (readonly [JsonRpcId, string])[] => Array.from({ length: LISTS }, (_, i) => [from + i, make(from + i)] as const);

const paths: Path[] = [
  { name: 'parse (yardstick)', answers: numbered(idFirst, 1), filter: (id, text) => filterJsonBodyParsed(text, listOf(id), reader, policy) ?? text },
  {
    name: 'new text',
    answers: numbered(idFirst, 1),
    filter: (id, _text, chunks) => {
      forgetRecentScans();
      return asBytes(id, chunks);
    },
  },
  { name: 'same id', answers: Array.from({ length: LISTS }, () => [7, idFirst(7)] as const), prepare: () => asBytes(7, chunksOf(idFirst(7))), filter: (id, _text, chunks) => asBytes(id, chunks) },
  { name: 'id first, other length', answers: numbered(idFirst, 10), prepare: () => asBytes(7, chunksOf(idFirst(7))), filter: (id, _text, chunks) => asBytes(id, chunks) },
  { name: 'id last, other length', answers: numbered(idLast, 10), prepare: () => asBytes(7, chunksOf(idLast(7))), filter: (id, _text, chunks) => asBytes(id, chunks) },
];

// Every path's output, checked once against the parse path's before anything is timed.
for (const path of paths) {
  forgetRecentScans();
  path.prepare?.();
  const [id, text] = path.answers[1] as readonly [JsonRpcId, string];
  const expected = JSON.parse(filterJsonBodyParsed(text, listOf(id), reader, policy) ?? 'null');
  const got = JSON.parse(textOf(path.filter(id, text, chunksOf(text))));
  if (JSON.stringify(got) !== JSON.stringify(expected) || got.result.tools.length !== 500) throw new Error(`${path.name}: the output differs from the parse path's`);
}

const micros = new Map<string, number[]>(paths.map((p) => [p.name, []]));
// Round -1 warms up and is not recorded.
for (let round = -1; round < ROUNDS; round++) {
  // Alternate the order, so no path always runs first after a collection.
  for (const path of round % 2 !== 0 ? paths : [...paths].reverse()) {
    forgetRecentScans();
    path.prepare?.();
    const inputs = path.answers.map(([id, text]) => [id, text, chunksOf(text)] as const);
    const start = process.cpuUsage();
    for (const [id, text, chunks] of inputs) path.filter(id, text, chunks);
    const used = process.cpuUsage(start);
    if (round >= 0) micros.get(path.name)?.push((used.user + used.system) / inputs.length);
  }
}

const yardstick = median(micros.get('parse (yardstick)') ?? []);
console.log(`bench:list-filter: one 1,000-tool tools/list answer (${(idFirst(1).length / 1024).toFixed(0)} KiB, 500 tools hidden), ${ROUNDS} rounds × ${LISTS} answers, process CPU time (median of rounds)\n`);
console.log(
  table([
    ['path', 'µs per list', 'by round', 'of parse'],
    ...paths.map((p) => {
      const values = micros.get(p.name) ?? [];
      const m = median(values);
      return [p.name, m.toFixed(1), values.map((v) => v.toFixed(0)).join(' '), (m / yardstick).toFixed(3)];
    }),
  ]),
);
