/**
 * Where the rate-limit counters live (rate-limiter-flexible; brute force and request rate): in this
 * process's memory (the default), or in Redis, so that every gateway instance behind a load balancer
 * sees the same counts and the same blocks (DESIGN.md, "Scale-out"). Fail closed: when Redis cannot be reached
 * a check rejects, and the pipeline answers 503 instead of letting an unthrottled attempt through.
 */
import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';

/** How many failures in what window, and how long a block lasts (ms; 0: no block beyond the window). */
export interface AttemptLimit {
  readonly attempts: number;
  readonly window: number;
  readonly block: number;
}

/** A source of counters, one per purpose (`auth-addr`, `login-name`, `req-principal`, …). */
export interface LimiterBackend {
  readonly kind: 'memory' | 'redis';
  /** A counter of `limit.attempts` per `limit.window`, blocking for `limit.block` once they are used up. */
  counter(limit: AttemptLimit, purpose: string): RateLimiterAbstract;
  /**
   * Resolves true once the store can count (at once in memory), false if it cannot within
   * `timeoutMs`. Until then checks fail closed (503), so the gateway waits for it at start.
   */
  ready(timeoutMs: number): Promise<boolean>;
  /** Whether the store answers now (for `/readyz`): always in memory; a PING within the command timeout for Redis. */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

function limiterOptions(limit: AttemptLimit): { points: number; duration: number; blockDuration: number } {
  return {
    points: limit.attempts,
    duration: Math.max(1, Math.ceil(limit.window / 1000)),
    // rate-limiter-flexible: 0 means no block.
    blockDuration: limit.block > 0 ? Math.max(1, Math.ceil(limit.block / 1000)) : 0,
  };
}

/** Counters in this process's memory: each instance counts on its own, and a restart forgets. */
export const memoryBackend: LimiterBackend = {
  kind: 'memory',
  counter: (limit, purpose) => new RateLimiterMemory({ keyPrefix: `mcpw-${purpose}`, ...limiterOptions(limit) }),
  ready: async () => true,
  healthy: async () => true,
  close: async () => {},
};

export interface RedisBackendOptions {
  /** `redis://` or `rediss://` URL (it may hold a password: never logged). */
  readonly url: string;
  /** Prefix of every key this gateway writes, so several deployments can share one Redis. */
  readonly keyPrefix: string;
  /** Told when the connection fails (once per outage, not per retry). */
  readonly onError?: (error: unknown) => void;
  /** Connection timeout, ms. @default 2000 */
  readonly connectTimeoutMs?: number;
  /** How long a command may take before the check fails closed, ms. @default 1000 */
  readonly commandTimeoutMs?: number;
}

/**
 * Counters in Redis, shared by every instance using the same URL and prefix. Commands are not
 * queued while the connection is down: they fail at once, so a request is refused (503) rather than
 * held, and the client reconnects in the background.
 */
export function redisBackend(options: RedisBackendOptions): LimiterBackend {
  const client = new Redis(options.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    // A Redis that stops answering without closing the connection (dropped packets, a paused host)
    // must not hold requests: a command fails after a second, and dead connections are noticed.
    commandTimeout: options.commandTimeoutMs ?? 1000,
    keepAlive: 10_000,
    // Named after the prefix, so `CLIENT LIST` shows whose connection it is.
    connectionName: `${options.keyPrefix}-limiter`,
    // Reconnect after 0.1 s, growing to 2 s, for as long as the gateway runs.
    retryStrategy: (times) => Math.min(100 * times, 2000),
  });
  let down = false;
  client.on('error', (error: unknown) => {
    if (down) return;
    down = true;
    options.onError?.(error);
  });
  client.on('ready', () => {
    down = false;
  });
  return {
    kind: 'redis',
    counter: (limit, purpose) =>
      new RateLimiterRedis({ storeClient: client, keyPrefix: `${options.keyPrefix}:${purpose}`, rejectIfRedisNotReady: true, ...limiterOptions(limit) }),
    ready(timeoutMs) {
      if (client.status === 'ready') return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (ok: boolean): void => {
          clearTimeout(timer);
          client.off('ready', onReady);
          resolve(ok);
        };
        const onReady = (): void => done(true);
        const timer = setTimeout(() => done(false), timeoutMs);
        client.on('ready', onReady);
      });
    },
    healthy: async () => client.status === 'ready' && (await client.ping().then(() => true, () => false)),
    async close() {
      await client.quit().catch(() => client.disconnect());
    },
  };
}

/** The backend `auth.rateLimit` asks for. */
export function limiterBackendOf(config: { readonly redis?: { readonly url: string; readonly keyPrefix: string } | undefined }, onError?: (error: unknown) => void): LimiterBackend {
  if (config.redis === undefined) return memoryBackend;
  return redisBackend({ url: config.redis.url, keyPrefix: config.redis.keyPrefix, ...(onError === undefined ? {} : { onError }) });
}
