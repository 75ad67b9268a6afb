/**
 * The minimal request shape the pipeline reads. Adapters build one over Node's `IncomingMessage` or a
 * web `Request`; nothing else of the framework reaches the stages.
 */
export interface RequestView {
  /** HTTP method, upper case. */
  readonly method: string;
  /** Path and query, as received. */
  readonly url: string;
  /** The value of a header (lower-case name), or `undefined`. Repeated headers arrive joined by `, `. */
  header(name: string): string | undefined;
  /** How many times a header (lower-case name) occurs. Web `Headers` cannot tell, and report 0 or 1. */
  headerCount(name: string): number;
  /** Peer address, for audit events and rate limits. */
  readonly remoteAddress?: string;
  /**
   * The id the host already gave this request (the one its logs carry, or its `X-Request-Id`): the
   * audit events use it. Without it the pipeline makes one (a UUID) when it has audit sinks.
   */
  readonly requestId?: string;
}
