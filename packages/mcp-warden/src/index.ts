/**
 * `mcp-warden`: managed API keys, storage backends (memory, SQLite, PostgreSQL), the hash-chained
 * audit log, brute-force protection, and the services the CLI and (next) the gateway share.
 * The library pipeline itself is `@mcp-warden/core`.
 */
export { GENESIS_HASH, canonicalEvent, eventHash, sealEvents } from './audit/chain.js';
export { type AuditBatchSink, databaseSink, jsonlFileSink, stdoutSink } from './audit/sinks.js';
export { type ChainVerdict, verifyChain } from './audit/verify.js';
export { AuditQueue, type AuditQueueOptions } from './audit/writer.js';
export { formatDuration, parseDuration } from './config/duration.js';
export { ConfigError, defaultConfigPath, loadConfig, parseConfig } from './config/load.js';
export { type WardenConfig, configSchema } from './config/schema.js';
export { KEY_PREFIX, hashSecret, looksLikeKey, mintKey, newKeyId, parseKey, type ParsedKey } from './keys/format.js';
export { type CreateKeyOptions, type IssuedKey, KeyNotFoundError, KeyService, type KeyStatus, keyStatus } from './keys/service.js';
export { type ApiKeyVerifier, type ApiKeyVerifierOptions, createApiKeyVerifier } from './keys/verifier.js';
export { type AttemptLimit, type AuthLimiterOptions, createAuthLimiter } from './ratelimit/auth-limiter.js';
export { type LimiterBackend, type RedisBackendOptions, limiterBackendOf, memoryBackend, redisBackend } from './ratelimit/backend.js';
export { type OpenServicesOptions, type Services, openServices } from './services.js';
export { createMemoryStore } from './store/memory.js';
export { StoreUnavailableError, openStore } from './store/open.js';
export { createPostgresStore, createSqliteStore, type PostgresStoreOptions, type SqliteStoreOptions } from './store/sql/sql-store.js';
export type { ApiKeyRecord, AuditHead, AuditQuery, AuditStore, KeyStore, Store, StoredAuditEvent } from './store/types.js';
