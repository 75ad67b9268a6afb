/**
 * `server.metricsToken`: with it, GET /metrics needs exactly that bearer token; without it, /metrics
 * stays open (the other gateway tests scrape it so).
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, metricsExposure, startGateway } from '../../src/server/gateway.js';
import { type SdkHttpServer, startSdkHttpServer } from '../fixtures/sdk-http-server.js';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const TOKEN = 'metrics-token-0123456789abcdef';

/** GET /metrics with the given raw header lines (repeats kept), answering status and body. */
function scrape(url: string, headers: string[] = []): Promise<{ status: number; body: string; challenge: string | undefined }> {
  return new Promise((resolve, reject) => {
    // Raw header lists get no Host of their own (HTTP/1.1 requires one).
    const req = request(`${url}/metrics`, { method: 'GET', headers: ['host', new URL(url).host, ...headers] }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, challenge: res.headers['www-authenticate'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('server.metricsToken', () => {
  let upstream: SdkHttpServer;
  let gateway: Gateway;

  beforeAll(async () => {
    upstream = await startSdkHttpServer({ look: { readOnlyHint: true } });
    const text = JSON.stringify({ server: { metricsToken: '${METRICS_TOKEN}' }, store: { type: 'memory' }, roles: { reader: ['read'] }, upstreams: { remote: { type: 'http', url: upstream.url } } });
    gateway = await startGateway({ config: parseConfig(text, 'metrics.yaml', { METRICS_TOKEN: TOKEN }), logger: quiet, port: 0 });
    await gateway.ready;
  }, 30_000);
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('serves the metrics for the token, with the scheme in any case', async () => {
    const ok = await scrape(gateway.url, ['authorization', `Bearer ${TOKEN}`]);
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('mcp_warden_requests_total');
    expect((await scrape(gateway.url, ['authorization', `bearer ${TOKEN}`])).status).toBe(200);
  });

  it('refuses no token and a wrong one with a bearer challenge, and says nothing of the metrics', async () => {
    for (const headers of [[], ['authorization', 'Bearer wrong-token-0123456789abcdef'], ['authorization', TOKEN], ['authorization', `Bearer ${TOKEN}x`]]) {
      const answer = await scrape(gateway.url, headers);
      expect(answer.status).toBe(401);
      expect(answer.challenge).toBe('Bearer realm="metrics"');
      expect(answer.body).not.toContain('mcp_warden_');
    }
  });

  describe('Security', () => {
    it('refuses a duplicated Authorization header even when one of them holds the token', async () => {
      const answer = await scrape(gateway.url, ['authorization', `Bearer ${TOKEN}`, 'authorization', 'Bearer other']);
      expect(answer.status).toBe(401);
    });

    it('refuses the token with extra text after it (CR/LF and spaces cannot smuggle it)', async () => {
      expect((await scrape(gateway.url, ['authorization', `Bearer ${TOKEN} extra`])).status).toBe(401);
    });
  });

  it('warns at start when /metrics is open beyond this machine (a non-loopback bind without a token)', () => {
    const config = (server: Record<string, unknown>) => parseConfig(JSON.stringify({ server, upstreams: {} }), 'metrics.yaml', {});
    expect(metricsExposure(config({ host: '0.0.0.0' }))).toMatch(/without authentication on a non-loopback bind: set server.metricsToken/);
    expect(metricsExposure(config({ host: '10.1.2.3' }))).toBeDefined();
    expect(metricsExposure(config({ host: '0.0.0.0', metricsToken: TOKEN }))).toBeUndefined();
    expect(metricsExposure(config({ host: '127.0.0.1' }))).toBeUndefined();
    expect(metricsExposure(config({ host: '::1' }))).toBeUndefined();
  });

  it('refuses a configured token shorter than 16 characters', () => {
    expect(() => parseConfig(JSON.stringify({ server: { metricsToken: 'short' }, upstreams: {} }), 'metrics.yaml', {})).toThrow(/server\.metricsToken: expected at least 16 characters/);
  });

  // Last: it changes the shared gateway's configuration.
  it('a reload applies a new token at once, and removing the token opens /metrics again', async () => {
    const next = 'rotated-metrics-token-fedcba9876543210';
    const config = (server: Record<string, unknown>) =>
      parseConfig(JSON.stringify({ server, store: { type: 'memory' }, roles: { reader: ['read'] }, upstreams: { remote: { type: 'http', url: upstream.url } } }), 'metrics.yaml', {});
    await gateway.reload(config({ metricsToken: next }));
    expect((await scrape(gateway.url, ['authorization', `Bearer ${TOKEN}`])).status).toBe(401);
    expect((await scrape(gateway.url, ['authorization', `Bearer ${next}`])).status).toBe(200);
    await gateway.reload(config({}));
    const open = await scrape(gateway.url);
    expect(open.status).toBe(200);
    expect(open.body).toContain('mcp_warden_requests_total');
  });
});
