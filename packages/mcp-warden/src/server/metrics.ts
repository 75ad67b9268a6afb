/**
 * Prometheus metrics (prom-client, a registry per gateway): requests and their latency per upstream,
 * decisions by outcome and rule, sessions per upstream, the audit queue.
 */
import type { AuditEvent } from '@mcp-warden/core';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AuditQueue } from '../audit/writer.js';
import type { Upstream, UpstreamErrorKind } from '../upstream/types.js';

export interface GatewayMetrics {
  readonly contentType: string;
  /** Starts timing a request; call the result with the status when it ends. */
  request(upstream: string): (status: number) => void;
  decision(event: AuditEvent): void;
  /** An upstream failed (see {@link UpstreamErrorKind}). */
  upstreamError(upstream: string, kind: UpstreamErrorKind): void;
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
  // Not the 5xx answers (mcp_warden_requests_total has them, the gateway's own 503s included): the
  // upstream's failures, a stream it broke off after a 200 too.
  const upstreamErrors = new Counter({
    name: 'mcp_warden_upstream_errors_total',
    help: 'Failures of an upstream by kind: unreachable, timeout, bad_answer (not MCP), broken (an answer or stream cut off), exited (a process ended by itself), start_failed',
    labelNames: ['upstream', 'kind'],
    registers: [registry],
  });
  new Gauge({
    name: 'mcp_warden_sessions',
    // An HTTP upstream owns its sessions, so the gateway can only count what it saw of them
    // (see StdioUpstream.sessionCount and HttpUpstream.sessionCount).
    help: 'Client sessions per upstream (stdio: sessions holding a child process here; http: upstream sessions answered through this instance in the last 30 minutes and not ended by a DELETE or a 404)',
    labelNames: ['upstream'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [name, upstream] of upstreams()) {
        const count = upstream.sessionCount;
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

  // Label children, looked up once per label set: prom-client hashes the labels object on every
  // inc/observe otherwise. The sets are bounded (upstreams × statuses, configured rules).
  const children = <T>(make: (upstream: string, rest: string) => T): ((upstream: string, rest: string) => T) => {
    const cache = new Map<string, Map<string, T>>();
    return (upstream, rest) => {
      let byRest = cache.get(upstream);
      if (byRest === undefined) {
        byRest = new Map();
        cache.set(upstream, byRest);
      }
      let child = byRest.get(rest);
      if (child === undefined) {
        child = make(upstream, rest);
        byRest.set(rest, child);
      }
      return child;
    };
  };
  const latencyOf = children((upstream) => latency.labels({ upstream }));
  const errorsOf = children((upstream, kind) => upstreamErrors.labels({ upstream, kind }));
  const requestsOf = children((upstream, status) => requests.labels({ upstream, status }));
  const allowedOf = children((upstream, rule) => decisions.labels({ upstream, decision: 'allow', rule }));
  const deniedOf = children((upstream, rule) => decisions.labels({ upstream, decision: 'deny', rule }));

  return {
    contentType: registry.contentType,
    request(upstream) {
      const end = latencyOf(upstream, '').startTimer();
      return (status) => {
        end();
        requestsOf(upstream, String(status)).inc();
      };
    },
    decision(event) {
      // Rules name roles and configured patterns, a bounded set; targets are not labels.
      (event.decision === 'allow' ? allowedOf : deniedOf)(event.upstream ?? '', event.rule).inc();
    },
    upstreamError(upstream, kind) {
      errorsOf(upstream, kind).inc();
    },
    render: () => registry.metrics(),
  };
}
