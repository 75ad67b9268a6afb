/**
 * The audit writer: events are queued by the request path and written in batches by a timer, off the
 * hot path. The queue is bounded; when it is full, `onFull: 'reject'` (the default) makes the pipeline
 * refuse new requests with 503 until it drains, `'drop'` drops events and counts them.
 *
 * Crash window: an event is durable once its batch is written, which happens within `flushIntervalMs`
 * of the decision (50 ms by default) unless the sinks are slower than the load. A process killed with
 * SIGKILL loses at most the events decided in the last flush interval plus the batch being written.
 */
import type { AuditEvent, AuditWriter } from '@mcp-warden/core';
import type { AuditBatchSink } from './sinks.js';

export interface AuditQueueOptions {
  readonly sinks: readonly AuditBatchSink[];
  /** Most events waiting to be written. @default 10000 */
  readonly capacity?: number;
  /** Most events per write. @default 500 */
  readonly batchSize?: number;
  /** Longest wait before queued events are written, in ms. @default 50 */
  readonly flushIntervalMs?: number;
  /** What a full queue does. @default 'reject' */
  readonly onFull?: 'reject' | 'drop';
  /** Told when a sink fails; its batch is retried at the next flush. */
  readonly onError?: (error: unknown, sink: string) => void;
}

/** A bounded, batching audit writer over one or more sinks. */
export class AuditQueue implements AuditWriter {
  readonly #sinks: readonly AuditBatchSink[];
  readonly #capacity: number;
  readonly #batchSize: number;
  readonly #onFull: 'reject' | 'drop';
  readonly #onError: (error: unknown, sink: string) => void;
  readonly #timer: NodeJS.Timeout;
  #queue: AuditEvent[] = [];
  /** Per sink, the batch it failed to take, retried before anything newer. */
  readonly #retry = new Map<AuditBatchSink, readonly AuditEvent[]>();
  #flushing: Promise<void> | undefined;
  #dropped = 0;
  #closed = false;

  constructor(options: AuditQueueOptions) {
    if (options.sinks.length === 0) throw new TypeError('audit: at least one sink is needed');
    this.#sinks = options.sinks;
    this.#capacity = options.capacity ?? 10_000;
    this.#batchSize = options.batchSize ?? 500;
    this.#onFull = options.onFull ?? 'reject';
    this.#onError = options.onError ?? (() => {});
    this.#timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 50);
    this.#timer.unref();
  }

  /** Whether new requests may be decided: false while a rejecting queue is full. */
  accepting(): boolean {
    return this.#onFull === 'drop' || this.#pending() < this.#capacity;
  }

  /** Events not yet written everywhere: the queue plus the largest batch a failing sink holds. */
  #pending(): number {
    let retrying = 0;
    for (const events of this.#retry.values()) retrying = Math.max(retrying, events.length);
    return this.#queue.length + retrying;
  }

  write(event: AuditEvent): void {
    if (this.#pending() >= this.#capacity) {
      if (this.#onFull === 'drop') {
        this.#dropped++;
        return;
      }
      // 'reject': the pipeline stopped admitting requests; events of requests already admitted are kept.
    }
    this.#queue.push(event);
    if (this.#queue.length >= this.#batchSize && this.#flushing === undefined) void this.flush();
  }

  /** Counters for metrics and tests. */
  stats(): { readonly pending: number; readonly dropped: number } {
    return { pending: this.#pending(), dropped: this.#dropped };
  }

  /** Writes what is queued now, batch by batch; resolves when done (or when a sink failed). */
  flush(): Promise<void> {
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0 || this.#retry.size > 0) {
      const batch = this.#queue.splice(0, this.#batchSize);
      let failed = false;
      for (const sink of this.#sinks) {
        const pending = this.#retry.get(sink);
        const events = pending === undefined ? batch : [...pending, ...batch];
        if (events.length === 0) continue;
        try {
          await sink.writeBatch(events);
          this.#retry.delete(sink);
        } catch (error) {
          this.#retry.set(sink, events);
          failed = true;
          this.#onError(error, sink.name);
        }
      }
      if (failed) return;
    }
  }

  /** Stops the timer and writes everything still queued. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.flush();
    if (this.#queue.length > 0 || this.#retry.size > 0) await this.flush();
  }
}
