/**
 * Prometheus metrics (prom-client, a registry per gateway): requests and their latency per upstream,
 * decisions by outcome and rule, sessions per upstream, the audit queue.
 */
import type { AuditEvent } from '@mcp-warden/core';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AuditQueue } from '../audit/writer.js';
import type { Upstream } from '../upstream/types.js';

export interface GatewayMetrics {
  readonly contentType: string;
  /** Starts timing a request; call the result with the status when it ends. */
  request(upstream: string): (status: number) => void;
  decision(event: AuditEvent): void;
  render(): Promise<string>;
}

export function createGatewayMetrics(upstreams: () => ReadonlyMap<string, Upstream>, audit: AuditQueue): GatewayMetrics {
  const registry = new Registry();
  const requests = new Counter({ name: 'mcp_warden_requests_total', help: 'HTTP requests to MCP endpoints', labelNames: ['upstream', 'status'], registers: [registry] });
  const latency = new Histogram({
    name: 'mcp_warden_request_duration_seconds',
    help: 'Time from request to the end of the response (streams included)',
    labelNames: ['upstream'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const decisions = new Counter({ name: 'mcp_warden_decisions_total', help: 'Policy and authentication decisions', labelNames: ['upstream', 'decision', 'rule'], registers: [registry] });
  const upstreamErrors = new Counter({ name: 'mcp_warden_upstream_errors_total', help: 'Responses with a 5xx status', labelNames: ['upstream'], registers: [registry] });
  new Gauge({
    name: 'mcp_warden_sessions',
    help: 'Open client sessions per upstream',
    labelNames: ['upstream'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [name, upstream] of upstreams()) {
        const count = (upstream as { sessionCount?: number }).sessionCount;
        if (count !== undefined) this.set({ upstream: name }, count);
      }
    },
  });
  new Gauge({
    name: 'mcp_warden_audit_pending_events',
    help: 'Audit events not yet written',
    registers: [registry],
    collect() {
      this.set(audit.stats().pending);
    },
  });
  new Counter({
    name: 'mcp_warden_audit_dropped_events_total',
    help: 'Audit events dropped by a full queue (onFull: drop)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(audit.stats().dropped);
    },
  });

  return {
    contentType: registry.contentType,
    request(upstream) {
      const end = latency.startTimer({ upstream });
      return (status) => {
        end();
        requests.inc({ upstream, status: String(status) });
        if (status >= 500) upstreamErrors.inc({ upstream });
      };
    },
    decision(event) {
      // Rules name roles and configured patterns, a bounded set; targets are not labels.
      decisions.inc({ upstream: event.upstream ?? '', decision: event.decision, rule: event.rule });
    },
    render: () => registry.metrics(),
  };
}
