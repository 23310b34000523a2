// Producer: publishes to one nsqd/shard over TCP with PUB, MPUB and DPUB. nsqd answers publishes
// in order, so answers are matched to commands first-in first-out. It connects on first use and
// again after a loss (waiting exponentially longer after each failed attempt); commands in flight
// when a connection drops fail with CONNECTION_CLOSED (they may or may not have been applied).

import { EventEmitter } from 'node:events';
import type { WireMessage } from '../wire/message';
import { encodeDpub, encodeMpub, encodePub, OK } from '../wire/nsq-v2-client';
import { exponentialDelay } from './backoff';
import { Connection, type ConnectionHandler, type ConnectionOptions } from './connection';
import { ClientError, errorText } from './errors';

export interface ProducerOptions extends ConnectionOptions {
  /** First wait before reconnecting after a failed attempt (ms). */
  reconnectBaseMs?: number;
  /** Longest wait between attempts (ms). */
  reconnectMaxMs?: number;
}

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

/** One connection and the commands written on it that await their answer, oldest first. */
class Link implements ConnectionHandler {
  conn: Connection | null = null;
  readonly pending: Pending[] = [];

  constructor(private readonly onClosed: (link: Link, err: Error | null) => void) {}

  message(_msg: WireMessage): void {
    // a producer never subscribes; nothing to do with a stray message
  }

  response(text: string): void {
    const p = this.pending.shift();
    if (!p) return;
    if (text === OK) p.resolve();
    else p.reject(new ClientError('PROTOCOL', `unexpected answer ${JSON.stringify(text)} to a publish`));
  }

  error(code: string, text: string, fatal: boolean): void {
    this.pending.shift()?.reject(new ClientError('NSQ_ERROR', `${code} ${text}`, code, fatal));
  }

  closed(err: Error | null): void {
    const why = new ClientError('CONNECTION_CLOSED', `connection closed before the answer${err ? ': ' + errorText(err) : ''}`);
    for (const p of this.pending.splice(0)) p.reject(why);
    this.onClosed(this, err);
  }
}

export interface Producer {
  on(event: 'connected', fn: (address: string) => void): this;
  on(event: 'disconnected', fn: (address: string, err: Error | null) => void): this;
}

export class Producer extends EventEmitter {
  private link: Link | null = null;
  private connecting: Promise<Link> | null = null;
  private failures = 0;
  private lastFailureAt = 0;
  private closing = false;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(readonly address: string, private readonly o: ProducerOptions = {}) {
    super();
  }

  /** Connects now (publishing connects by itself; this is for failing early). */
  async connect(): Promise<void> {
    await this.ensureLink();
  }

  get connected(): boolean {
    return this.link !== null;
  }

  publish(topic: string, body: Buffer | string): Promise<void> {
    return this.send(() => encodePub(topic, body));
  }

  /** One MPUB: all or nothing. */
  publishMany(topic: string, bodies: ReadonlyArray<Buffer | string>): Promise<void> {
    return this.send(() => encodeMpub(topic, bodies));
  }

  publishDeferred(topic: string, deferMs: number, body: Buffer | string): Promise<void> {
    return this.send(() => encodeDpub(topic, deferMs, body));
  }

  /** Refuses new publishes, waits for every answer still due, then closes the connection. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([...this.inFlight]);
    const conn = this.link?.conn;
    if (!conn || conn.closed) return;
    await new Promise<void>((resolve) => {
      // the server closes its side on our EOF; a server that does not is cut off after 5 s
      const timer = setTimeout(() => conn.destroy(), 5000);
      this.once('disconnected', () => {
        clearTimeout(timer);
        resolve();
      });
      conn.end();
    });
  }

  private send(encode: () => Buffer): Promise<void> {
    if (this.closing) return Promise.reject(new ClientError('CLOSED', 'producer is closed'));
    let bytes: Buffer;
    try {
      bytes = encode(); // invalid names and ids throw before anything is queued
    } catch (err) {
      return Promise.reject(err);
    }
    const p = (this.link ? Promise.resolve(this.link) : this.ensureLink()).then(
      (link) =>
        new Promise<void>((resolve, reject) => {
          if (link.conn === null || link.conn.closed) {
            reject(new ClientError('CONNECTION_CLOSED', `${this.address}: connection lost before sending`));
            return;
          }
          link.pending.push({ resolve, reject });
          link.conn.write(bytes);
        }),
    );
    this.inFlight.add(p);
    const forget = (): void => void this.inFlight.delete(p);
    p.then(forget, forget);
    return p;
  }

  private ensureLink(): Promise<Link> {
    if (this.link) return Promise.resolve(this.link);
    this.connecting ??= this.open().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async open(): Promise<Link> {
    if (this.failures > 0) {
      const wait = this.lastFailureAt + exponentialDelay(this.failures, this.o.reconnectBaseMs ?? 100, this.o.reconnectMaxMs ?? 10_000) - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const link = new Link((l, err) => {
      if (this.link === l) this.link = null;
      this.emit('disconnected', this.address, err);
    });
    try {
      link.conn = await Connection.open(this.address, this.o, link);
    } catch (err) {
      this.failures++;
      this.lastFailureAt = Date.now();
      throw err;
    }
    this.failures = 0;
    this.link = link;
    this.emit('connected', this.address);
    return link;
  }
}
