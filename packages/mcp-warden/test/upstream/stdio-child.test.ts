/**
 * StdioChild reading a real child's stdout: messages are the lines the child writes, however the
 * pipe cuts them (a long line in many chunks, a CR LF cut between chunks, characters cut between
 * chunks), blank lines are skipped, a line that is not JSON is an error, and a line longer than
 * `maxLineBytes` ends the child.
 */
import { describe, expect, it } from 'vitest';
import { StdioChild } from '../../src/upstream/stdio-child.js';

/** A child that writes `pieces` to stdout one at a time (each after the last was flushed), then waits. */
function writer(pieces: readonly string[]): string {
  return `
const pieces = ${JSON.stringify(pieces)};
let i = 0;
const next = () => { if (i < pieces.length) process.stdout.write(pieces[i++], () => setTimeout(next, 1)); };
next();
setInterval(() => {}, 1000);
`;
}

async function read(pieces: readonly string[], count: number, maxLineBytes?: number): Promise<{ messages: unknown[]; lines: string[]; errors: string[]; closed: boolean }> {
  const child = new StdioChild({ command: process.execPath, args: ['-e', writer(pieces)], env: {}, ...(maxLineBytes === undefined ? {} : { maxLineBytes }) });
  const messages: unknown[] = [];
  const lines: string[] = [];
  const errors: string[] = [];
  let closed = false;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${messages.length} of ${count} messages, errors: ${errors.join('; ')}`)), 20_000);
    const check = (): void => {
      if (messages.length + errors.length >= count) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.onmessage = (message, line) => {
      messages.push(message);
      lines.push(line);
      check();
    };
    child.onerror = (error) => {
      errors.push(error.message);
      check();
    };
    child.onclose = () => {
      closed = true;
    };
    child.start().catch(reject);
  });
  await child.close();
  return { messages, lines, errors, closed };
}

describe('StdioChild reading its child', () => {
  it('joins a 3 MB line written in 3,000 pieces cut inside characters, and reads the messages around it', async () => {
    const big = (): string => JSON.stringify({ jsonrpc: '2.0', id: 2, result: { contents: [{ uri: 'file:///big', text: 'é€😀x'.repeat(300_000) }] } });
    // The child makes the same text and writes its bytes in 3,000 pieces (so characters are cut
    // too), each after the last was flushed, between two short messages.
    const script = `
const text = (${big.toString()})();
const bytes = Buffer.from(text, 'utf8');
const step = Math.ceil(bytes.length / 3000);
const pieces = [Buffer.from('{"jsonrpc":"2.0","id":1,"result":{}}\\n')];
for (let at = 0; at < bytes.length; at += step) pieces.push(bytes.subarray(at, at + step));
pieces.push(Buffer.from('\\n{"jsonrpc":"2.0","id":3,"result":{}}\\n'));
let i = 0;
const next = () => { if (i < pieces.length) process.stdout.write(pieces[i++], () => setImmediate(next)); };
next();
setInterval(() => {}, 1000);
`;
    const child = new StdioChild({ command: process.execPath, args: ['-e', script], env: {} });
    const ids: unknown[] = [];
    let bigLine: string | undefined;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`got ${ids.length} messages`)), 30_000);
      child.onmessage = (message, line) => {
        ids.push((message as { id: unknown }).id);
        if ((message as { id: unknown }).id === 2) bigLine = line;
        if (ids.length === 3) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.onerror = (error) => reject(error);
      child.start().catch(reject);
    });
    await child.close();
    expect(ids).toEqual([1, 2, 3]);
    expect(bigLine).toBe(big());
  });

  it('reads CR LF line ends cut between chunks, several messages in one chunk, and skips blank lines', async () => {
    const { messages, lines, errors } = await read(['{"jsonrpc":"2.0","id":1,"result":{}}\r', '\n\n  \r\n{"jsonrpc":"2.0","id":2,', '"result":{}}\r\n{"jsonrpc":"2.0","id":3,"result":{}}\n'], 3);
    expect(errors).toEqual([]);
    expect(messages.map((m) => (m as { id: number }).id)).toEqual([1, 2, 3]);
    // The lines handed on are the JSON texts, without their line ends.
    expect(lines).toEqual(['{"jsonrpc":"2.0","id":1,"result":{}}', '{"jsonrpc":"2.0","id":2,"result":{}}', '{"jsonrpc":"2.0","id":3,"result":{}}']);
  });

  it('reports a line that is not JSON and goes on with the next', async () => {
    const { messages, errors } = await read(['not json\n{"jsonrpc":"2.0","id":1,"result":{}}\n'], 2);
    expect(errors).toEqual(['the upstream wrote a line that is not JSON (8 bytes)']);
    expect(messages).toHaveLength(1);
  });

  it('Security: drops JSON that is no message (null, a number, a string, true) as it drops a line that is not JSON, and goes on', async () => {
    const { messages, errors } = await read(['null\n5\n"text"\ntrue\n{"jsonrpc":"2.0","id":1,"result":{}}\n'], 5);
    expect(errors).toEqual([
      'the upstream wrote a line that is not a JSON-RPC message (4 bytes of JSON null)',
      'the upstream wrote a line that is not a JSON-RPC message (1 bytes of JSON number)',
      'the upstream wrote a line that is not a JSON-RPC message (6 bytes of JSON string)',
      'the upstream wrote a line that is not a JSON-RPC message (4 bytes of JSON boolean)',
    ]);
    expect(messages).toEqual([{ jsonrpc: '2.0', id: 1, result: {} }]);
  });

  it('ends the child when a line grows past maxLineBytes, however it is cut', async () => {
    const { messages, errors } = await read(['{"jsonrpc":"2.0","id":1,"result":{}}\n', 'x'.repeat(600), 'x'.repeat(600)], 2, 1000);
    expect(messages).toHaveLength(1);
    expect(errors).toEqual(['the upstream wrote a line longer than 1000 bytes']);
  });
});
