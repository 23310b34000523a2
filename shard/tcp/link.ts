// The byte side of a client connection, beneath the protocol: the transport seam (swapped when
// IDENTIFY upgrades it), pausing input, the output buffer and nsqd's flush policy, heartbeats
// with the read deadline, and the graceful close. connection.ts builds the protocol on top.

import type { Socket } from 'node:net';
import type { Logger } from '../../runtime/logger';
import { HEARTBEAT, OK } from '../../wire/nsq-v2';
import { FrameWriter } from './output';
import { plainTransport, type TlsInfo, type Transport, type Upgrades } from './transport';

/** Stop reading a client whose unread output passes this (nsqd blocks on the write instead). */
const OUTPUT_HIGH_WATER = 1 << 20;
/** How long a closed connection keeps draining a client that does not close its side. */
const LINGER_MS = 2000;

export abstract class Link {
  readonly remoteIp: string;
  /** host:port as Go prints it ("[::1]:4150" for IPv6). */
  readonly remoteAddress: string;
  protected transport: Transport;
  protected readonly out: FrameWriter;
  protected closed = false;
  /** What the transport has been upgraded to (nsqd's client TLS, Snappy and Deflate flags). */
  protected tlsInfo: TlsInfo | null = null;
  protected snappyOn = false;
  protected deflateOn = false;

  private waiting = false; // the protocol went async and wants no input meanwhile
  private backpressured = false;
  private flushQueued = false;
  private flushTimerArmed = false;
  private flushTimer: NodeJS.Timeout | null = null;
  private outputBufferTimeoutMs = 0;
  private heartbeatMs = 0;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private lastReadAt: number;

  constructor(
    protected readonly socket: Socket,
    protected readonly now: () => number,
    protected readonly logger: Logger,
    outputBufferSize: number,
  ) {
    // Go reports a v4 client of a dual-stack listener as a.b.c.d, not ::ffff:a.b.c.d
    const ip = socket.remoteAddress ?? '';
    this.remoteIp = ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
    this.remoteAddress = `${this.remoteIp.includes(':') ? `[${this.remoteIp}]` : this.remoteIp}:${socket.remotePort ?? 0}`;
    this.transport = plainTransport(socket);
    this.out = new FrameWriter(socket, outputBufferSize);
    this.lastReadAt = now();
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    this.listen(this.transport);
  }

  /** A chunk from the client (only while open). */
  protected abstract received(chunk: Buffer): void;
  /** The client closed its side. */
  protected abstract inputEnded(): void;
  /** The connection is going away: release what it holds, before the socket closes. */
  protected abstract released(): void;

  // ---- input ----

  private listen(t: Transport): void {
    t.input.on('data', this.onData);
    t.input.on('end', this.onEnd);
    // an upgrade's streams (a corrupt compressed stream, a TLS failure) end the connection, as
    // a read or write error does in nsqd: no error frame
    if (t.input !== this.socket) t.input.on('error', this.onError);
    if (t.output !== this.socket && (t.output as unknown) !== t.input) t.output.on('error', this.onError);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.lastReadAt = this.now();
    if (!this.closed) this.received(chunk);
  };

  private readonly onEnd = (): void => {
    if (!this.closed) this.inputEnded();
  };

  private readonly onError = (err: Error): void => {
    this.logger.debug('client connection error', { client: this.remoteAddress, error: err.message });
    this.shutdown(false);
  };

  private readonly onClose = (): void => {
    this.shutdown(false);
  };

  /** While waiting, no input is read (commands behind an async one wait their turn). */
  protected setWaiting(waiting: boolean): void {
    this.waiting = waiting;
    this.updateInput();
  }

  private updateInput(): void {
    const input = this.transport.input;
    if (this.waiting || this.backpressured) input.pause();
    else input.resume();
  }

  // ---- the transport seam ----

  /**
   * The upgrades IDENTIFY negotiated, in nsqd's order: TLS, then snappy or deflate over it, each
   * wrapping the transport as it stands once everything written before has gone out on it, and
   * each confirmed with OK over the new transport. Input stays paused (setWaiting) meanwhile.
   */
  protected async upgrade(u: Upgrades, n: { tls: boolean; snappy: boolean; deflate: boolean; deflateLevel: number }): Promise<void> {
    if (n.tls && u.tls) {
      const tls = u.tls;
      await this.upgradeTo(async () => {
        const r = await tls(this.socket);
        this.tlsInfo = r.info;
        return r.transport;
      });
    }
    if (n.snappy && u.snappy) {
      const snappy = u.snappy;
      await this.upgradeTo(async () => snappy(this.transport));
      this.snappyOn = true;
    }
    if (n.deflate && u.deflate) {
      const deflate = u.deflate;
      await this.upgradeTo(async () => deflate(this.transport, n.deflateLevel));
      this.deflateOn = true;
    }
  }

  private async upgradeTo(wrap: () => Promise<Transport>): Promise<void> {
    await this.drained();
    if (this.closed) throw new Error('connection closed');
    const old = this.transport.input;
    old.off('data', this.onData);
    old.off('end', this.onEnd);
    const t = await wrap();
    if (this.closed) throw new Error('connection closed');
    this.transport = t;
    this.out.setOutput(t.output);
    this.listen(t);
    this.updateInput();
    this.out.response(OK);
    this.out.flush();
  }

  /** Resolves once the current output has passed on everything written so far. */
  private drained(): Promise<void> {
    const o = this.out.output;
    return new Promise((resolve, reject) => {
      if (o.writableLength === 0) return resolve();
      o.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    });
  }

  // ---- output: nsqd flushes at once when the client cannot take more, else within output_buffer_timeout ----

  /** Flush at the end of this turn of the event loop: one write for everything this turn produced. */
  protected flushSoon(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(this.flushNow);
  }

  protected readonly flushNow = (): void => {
    this.flushQueued = false;
    if (this.closed) return;
    this.out.flush();
    const o = this.transport.output;
    if (!this.backpressured && o.writableLength > OUTPUT_HIGH_WATER) {
      this.backpressured = true;
      this.updateInput();
      o.once('drain', () => {
        this.backpressured = false;
        if (!this.closed) this.updateInput();
      });
    }
  };

  /** Bounds the wait of buffered frames by output_buffer_timeout (0: only size or readiness flush). */
  protected armFlushTimer(): void {
    if (this.flushTimerArmed || this.outputBufferTimeoutMs <= 0) return;
    this.flushTimerArmed = true;
    if (this.flushTimer) this.flushTimer.refresh();
    else this.flushTimer = setTimeout(this.onFlushTimer, this.outputBufferTimeoutMs);
  }

  private readonly onFlushTimer = (): void => {
    this.flushTimerArmed = false;
    this.flushNow();
  };

  // ---- heartbeats and the read deadline (nsqd: 2 × heartbeat_interval without a byte) ----

  /** (Re)starts the timers for these settings; a heartbeat of 0 disables heartbeats and the deadline. */
  protected configureTimers(heartbeatMs: number, outputBufferTimeoutMs: number): void {
    this.stopTimers();
    this.outputBufferTimeoutMs = outputBufferTimeoutMs;
    this.heartbeatMs = heartbeatMs;
    if (this.out.buffered > 0) this.flushSoon();
    if (heartbeatMs <= 0) return;
    this.heartbeatTimer = setInterval(this.onHeartbeat, heartbeatMs);
    this.deadlineTimer = setTimeout(this.onDeadline, 2 * heartbeatMs);
  }

  private stopTimers(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.heartbeatTimer = this.deadlineTimer = this.flushTimer = null;
    this.flushTimerArmed = false;
  }

  private readonly onHeartbeat = (): void => {
    if (this.closed) return;
    this.out.response(HEARTBEAT);
    this.flushNow();
  };

  // The deadline timer is not reset per read (that would cost a timer update per chunk): when it
  // fires early, it re-arms for the time still left since the last read.
  private readonly onDeadline = (): void => {
    if (this.closed) return;
    const limit = 2 * this.heartbeatMs;
    const idle = this.now() - this.lastReadAt;
    if (idle < limit) {
      this.deadlineTimer = setTimeout(this.onDeadline, Math.max(1, Math.ceil(limit - idle)));
      return;
    }
    this.logger.info('client timed out', { client: this.remoteAddress, idle_ms: Math.round(idle) });
    this.shutdown(false);
  };

  // ---- the end ----

  /**
   * Ends the connection once, after released(). Graceful: what is buffered is written, then our
   * side is closed while we keep reading (and dropping) what the client still sends until it
   * closes too, so the kernel never answers unread bytes with a reset that could destroy the error
   * frame just sent; LINGER_MS bounds that. Otherwise the socket is destroyed at once.
   */
  protected shutdown(graceful: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.stopTimers();
    this.released();
    const socket = this.socket;
    if (graceful && !socket.destroyed) {
      this.out.flush();
      const o = this.transport.output;
      if (o === socket) socket.end();
      else o.end(() => socket.end());
      this.waiting = this.backpressured = false;
      this.updateInput();
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
    } else {
      socket.destroy();
    }
  }
}
