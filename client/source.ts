// What the tools need from a transport, whichever it is — NSQ TCP straight to the shards
// (Consumer, Producer) or HTTP through a gateway (GatewayConsumer, GatewayProducer):
// MessageSource to consume, Publisher to publish.

import type { EventEmitter } from 'node:events';
import type { ClientError } from './errors';
import type { Message } from './message';

/** How either consumer hands out messages, and how it slows down after failures. */
export interface DeliveryOptions {
  topic: string;
  channel: string;
  /** Messages in flight at once (over all connections for TCP; default 1, as go-nsq and nsqjs). */
  maxInFlight?: number;
  /** Deliveries after which a message is no longer emitted but finished and emitted as 'discard' (0: no limit). */
  maxAttempts?: number;
  /** requeue() without a delay waits this × attempts (default 90 s as go-nsq, capped at maxRequeueDelayMs). */
  requeueDelayMs?: number;
  maxRequeueDelayMs?: number;
  /** Backoff after failures: first pause (default 1 s; 0 turns backoff off) and longest pause (2 min). */
  backoffMultiplierMs?: number;
  maxBackoffMs?: number;
}

export interface MessageSource {
  readonly topic: string;
  readonly channel: string;
  /** Starts taking messages; rejects only on a mistake that retrying cannot fix (e.g. a refused API key). */
  start(): Promise<void>;
  /** Stops taking messages, waits (bounded) for those in flight to be settled, then lets go. */
  close(): Promise<void>;
  on(event: 'message' | 'discard', fn: (m: Message) => void): this;
  /** `address` names the shard (TCP) or the gateway (HTTP). */
  on(event: 'connected', fn: (address: string) => void): this;
  on(event: 'disconnected', fn: (address: string, err: Error | null) => void): this;
  on(event: 'error', fn: (err: ClientError) => void): this;
  on(event: 'backoff', fn: (level: number, pauseMs: number) => void): this;
}

export interface Publisher {
  publish(topic: string, body: Buffer | string): Promise<void>;
  /** Publishes every body or fails (a failure may still have published some: at least once). */
  publishMany(topic: string, bodies: ReadonlyArray<Buffer | string>): Promise<void>;
  /** Refuses new publishes, waits for those in progress, then lets go of the connections. */
  close(): Promise<void>;
}

/** What a consumer counts of the messages it handled. */
export interface DeliveryCounts {
  received: number;
  finished: number;
  requeued: number;
  discarded: number;
}

/**
 * Hands a received message to the consumer's listeners as 'message' — or, past `maxAttempts`
 * deliveries (0: no limit), finishes it and emits it as 'discard' instead, as go-nsq does.
 */
export function emitDelivery(source: EventEmitter, m: Message, maxAttempts: number, counts: DeliveryCounts): void {
  counts.received++;
  if (maxAttempts > 0 && m.attempts > maxAttempts) {
    counts.discarded++;
    m.finish();
    source.emit('discard', m);
    return;
  }
  source.emit('message', m);
}
