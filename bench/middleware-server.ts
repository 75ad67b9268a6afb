/**
 * Child process of `bench/middleware.ts`: serves one scenario on 127.0.0.1 (a random port), reports
 * the port over IPC, and closes when told to (or when the runner goes away).
 *
 * Usage (by the runner only): node <tsx loader flags> bench/middleware-server.ts <scenario>
 */
import type { AddressInfo } from 'node:net';
import { JWT_SCENARIOS, SCENARIOS, type ScenarioId, createScenarioApp } from './middleware-apps.js';

export type ServerMessage = { type: 'ready'; port: number } | { type: 'closed' };

const id = process.argv[2] as ScenarioId | undefined;
if (id === undefined || ![...SCENARIOS, ...JWT_SCENARIOS].includes(id)) {
  console.error(`middleware-server: unknown scenario ${String(id)}; expected one of ${[...SCENARIOS, ...JWT_SCENARIOS].join(', ')}`);
  process.exit(2);
}
if (process.send === undefined) {
  console.error('middleware-server: must be started by bench/middleware.ts (with an IPC channel)');
  process.exit(2);
}

const send = (message: ServerMessage): void => {
  if (process.connected) process.send?.(message);
};

const server = createScenarioApp(id).listen(0, '127.0.0.1', () => {
  send({ type: 'ready', port: (server.address() as AddressInfo).port });
});
server.keepAliveTimeout = 30_000;

let closing = false;
function close(): void {
  if (closing) return;
  closing = true;
  server.close(() => {
    send({ type: 'closed' });
    process.disconnect?.();
    process.exit(0);
  });
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('message', (message) => {
  if (message === 'stop') close();
});
process.on('disconnect', close);
process.on('SIGTERM', close);
process.on('SIGINT', close);
