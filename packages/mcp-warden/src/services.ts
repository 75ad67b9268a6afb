/**
 * The services a configuration describes, wired once: store, key service and verifier, audit queue,
 * auth limiter, and the pipeline options built from them. The CLI and the HTTP faces share them.
 */
import { type AuditSink, type AuditWriter, type AuthAttemptLimiter, type CredentialVerifier, Policy, type WardenOptions, compilePattern, staticTokens } from '@mcp-warden/core';
import { AuditQueue } from './audit/writer.js';
import { type AuditBatchSink, databaseSink, jsonlFileSink, stdoutSink } from './audit/sinks.js';
import type { WardenConfig } from './config/schema.js';
import { type ApiKeyVerifier, createApiKeyVerifier } from './keys/verifier.js';
import { KeyService } from './keys/service.js';
import { createAuthLimiter } from './ratelimit/auth-limiter.js';
import { openStore } from './store/open.js';
import type { Store } from './store/types.js';
import { resolve, dirname } from 'node:path';

export interface Services {
  readonly config: WardenConfig;
  readonly store: Store;
  readonly keys: KeyService;
  readonly policy: Policy;
  /** Present when API keys are enabled. */
  readonly keyVerifier?: ApiKeyVerifier;
  readonly audit: AuditQueue;
  /** Options for `createWarden` / the adapters, ready to use; spread and add your own. */
  readonly wardenOptions: WardenOptions;
  close(): Promise<void>;
}

export interface OpenServicesOptions {
  /** The config file's path, to resolve relative sink paths against. */
  readonly configFile?: string;
  /** Extra audit sinks (a pino logger sink, a test's collector). */
  readonly extraAudit?: readonly (AuditSink | AuditWriter)[];
  /** Told about background failures (audit sinks, last-used writes). */
  readonly onError?: (error: unknown, where: string) => void;
}

/** What the pipeline options are built from besides the configuration. */
export interface PipelineParts {
  readonly keyVerifier: ApiKeyVerifier | undefined;
  readonly audit: AuditQueue;
  readonly extraAudit: readonly (AuditSink | AuditWriter)[];
  /** Reuse a limiter (its counters) across reloads; a new one is made when absent. */
  readonly authLimiter?: AuthAttemptLimiter;
}

/**
 * The pipeline options a configuration implies: verifiers (API keys, then static tokens), audit,
 * limiter, roles, argument recording. Re-run on reload; the store-backed parts are passed in.
 */
export function buildPipelineOptions(config: WardenConfig, parts: PipelineParts): WardenOptions & { readonly authLimiter: AuthAttemptLimiter } {
  const verifiers: CredentialVerifier[] = [];
  if (parts.keyVerifier !== undefined) verifiers.push(parts.keyVerifier);
  if (config.auth.staticTokens.length > 0) verifiers.push(staticTokens(config.auth.staticTokens));
  const recorded = config.audit.recordArguments.map((p, i) => compilePattern(p, `audit.recordArguments[${i}]`));
  return {
    policy: new Policy({
      roles: config.roles,
      ...(config.deny === undefined ? {} : { deny: config.deny }),
      ...(config.toolAnnotations === undefined ? {} : { toolAnnotations: config.toolAnnotations }),
    }),
    verifiers,
    audit: [parts.audit, ...parts.extraAudit],
    authLimiter: parts.authLimiter ?? createAuthLimiter(config.auth.rateLimit),
    ...(recorded.length === 0 ? {} : { recordArguments: (action) => action.target !== undefined && recorded.some((p) => p.exact.test(action.target as string)) }),
  };
}

/** Opens everything a configuration describes. Close it to flush the audit queue and last-used times. */
export async function openServices(config: WardenConfig, options: OpenServicesOptions = {}): Promise<Services> {
  const store = await openStore(config.store);
  const onError = options.onError ?? (() => {});
  const base = options.configFile === undefined ? process.cwd() : dirname(resolve(options.configFile));
  const keyVerifier = config.auth.apiKeys.enabled
    ? createApiKeyVerifier(store.keys, { cacheTtlMs: config.auth.apiKeys.cacheTtl, onError: (e) => onError(e, 'api-keys') })
    : undefined;
  const keys = new KeyService(store.keys, { onChange: (id) => keyVerifier?.invalidate(id) });
  const sinks: AuditBatchSink[] = config.audit.sinks.map((sink) => {
    if (sink === 'database') return databaseSink(store.audit);
    if (sink === 'stdout') return stdoutSink();
    return jsonlFileSink(resolve(base, sink.jsonl));
  });
  const audit = new AuditQueue({
    sinks,
    capacity: config.audit.queue.capacity,
    batchSize: config.audit.queue.batchSize,
    flushIntervalMs: config.audit.queue.flushInterval,
    onFull: config.audit.queue.onFull,
    onError: (e, sink) => onError(e, `audit:${sink}`),
  });
  const wardenOptions = buildPipelineOptions(config, { keyVerifier, audit, extraAudit: options.extraAudit ?? [] });
  return {
    config,
    store,
    keys,
    policy: wardenOptions.policy as Policy,
    ...(keyVerifier === undefined ? {} : { keyVerifier }),
    audit,
    wardenOptions,
    async close() {
      await audit.close();
      await keyVerifier?.close();
      await store.close();
    },
  };
}
