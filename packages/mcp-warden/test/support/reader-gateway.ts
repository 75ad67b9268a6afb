/**
 * A gateway started from a config object (memory store, a `reader` role that may read) in front of
 * the given upstreams, with a reader API key: the set-up of the tests that look at what the gateway
 * does for a plain reader.
 */
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

export async function startReaderGateway(upstreams: Record<string, unknown>, file = 'test.yaml'): Promise<{ gateway: Gateway; reader: string }> {
  const config = parseConfig(JSON.stringify({ store: { type: 'memory' }, roles: { reader: ['read'] }, upstreams }), file, {});
  const gateway = await startGateway({ config, logger: quiet, port: 0 });
  await gateway.ready;
  const reader = (await gateway.services.keys.create({ name: 'reader', roles: ['reader'] })).plaintext;
  return { gateway, reader };
}
