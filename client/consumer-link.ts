// One subscribed connection of a Consumer: SUB, the RDY it was given, its messages in flight,
// FIN/REQ/TOUCH for the messages it delivered (never for another connection's), and its CLS close.

import type { WireMessage } from '../wire/message';
import { CLOSE_WAIT, CLS_BYTES, encodeFin, encodeRdy, encodeReq, encodeSub, encodeTouch, OK } from '../wire/nsq-v2-client';
import { Connection, type ConnectionHandler, type ConnectionOptions } from './connection';
import { ClientError } from './errors';
import { Message, type MessageSettler } from './message';
import type { RdyConn } from './rdy';

/** What the owning consumer is told. */
export interface LinkOwner {
  readonly topic: string;
  readonly channel: string;
  linkSubscribed(link: ConsumerLink): void;
  linkMessage(link: ConsumerLink, m: Message): void;
  linkSettled(kind: 'finish' | 'requeue', backoff: boolean): void;
  linkError(err: ClientError): void;
  linkClosed(link: ConsumerLink, err: Error | null): void;
  requeueDelay(attempts: number): number;
}

export class ConsumerLink implements ConnectionHandler, MessageSettler, RdyConn {
  rdy = 0;
  inFlight = 0;
  maxRdy = 0;
  lastMessageAt = -Infinity;
  lastRdyAt = -Infinity;
  subscribed = false;
  /** CLS sent (or about to be): no RDY any more. */
  closing = false;
  private closeWaitSeen = false;
  private conn: Connection | null = null;
  private closeTimer: NodeJS.Timeout | null = null;
  private readonly closeWaiters: Array<() => void> = [];

  private constructor(readonly address: string, private readonly owner: LinkOwner) {}

  static async open(address: string, o: ConnectionOptions, owner: LinkOwner): Promise<ConsumerLink> {
    const link = new ConsumerLink(address, owner);
    const conn = await Connection.open(address, o, link);
    link.conn = conn;
    link.maxRdy = conn.settings.maxRdyCount;
    conn.write(encodeSub(owner.topic, owner.channel));
    return link;
  }

  get msgTimeoutMs(): number {
    return this.conn?.settings.msgTimeoutMs ?? 60_000;
  }

  setRdy(count: number, now: number): void {
    if (count === this.rdy || this.conn === null || this.conn.closed) return;
    if (this.rdy === 0 && count > 0) this.lastRdyAt = now;
    this.rdy = count;
    this.conn.write(encodeRdy(count));
  }

  /** CLS, then resolves when the connection is gone: the server ends it once nothing is in flight, or we do. */
  close(timeoutMs: number): Promise<void> {
    const conn = this.conn;
    if (conn === null || conn.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.closeWaiters.push(resolve);
      if (this.closing) return;
      this.closing = true;
      if (this.subscribed) conn.write(CLS_BYTES);
      else conn.end();
      this.closeTimer = setTimeout(() => conn.destroy(), timeoutMs);
    });
  }

  destroy(): void {
    this.conn?.destroy();
  }

  // ---- ConnectionHandler ----

  message(wire: WireMessage): void {
    this.inFlight++;
    this.lastMessageAt = performance.now();
    this.owner.linkMessage(this, new Message(wire, this.owner.topic, this.owner.channel, this.address, this.msgTimeoutMs, this));
  }

  response(text: string): void {
    if (text === OK && !this.subscribed) {
      this.subscribed = true;
      if (!this.closing) this.owner.linkSubscribed(this);
    } else if (text === CLOSE_WAIT) {
      this.closeWaitSeen = true;
      this.endIfDrained();
    }
  }

  error(code: string, text: string, fatal: boolean): void {
    this.owner.linkError(new ClientError('NSQ_ERROR', `${this.address}: ${code} ${text}`, code, fatal));
  }

  closed(err: Error | null): void {
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.inFlight = 0;
    this.owner.linkClosed(this, err);
    for (const w of this.closeWaiters.splice(0)) w();
  }

  // ---- MessageSettler: only for messages this connection delivered ----

  finish(m: Message): boolean {
    if (!this.settle(encodeFin(m.id))) return false;
    this.owner.linkSettled('finish', false);
    return true;
  }

  requeue(m: Message, delayMs: number, backoff: boolean): boolean {
    if (!this.settle(encodeReq(m.id, delayMs))) return false;
    this.owner.linkSettled('requeue', backoff);
    return true;
  }

  touch(m: Message): boolean {
    if (this.conn === null || this.conn.closed) return false;
    this.conn.write(encodeTouch(m.id));
    return true;
  }

  defaultRequeueDelayMs(m: Message): number {
    return this.owner.requeueDelay(m.attempts);
  }

  private settle(command: Buffer): boolean {
    if (this.conn === null || this.conn.closed) return false;
    this.conn.write(command);
    if (this.inFlight > 0) this.inFlight--;
    this.endIfDrained();
    return true;
  }

  // nsqd leaves the connection open after CLOSE_WAIT; a Sluice shard ends it itself. Either way:
  private endIfDrained(): void {
    if (this.closeWaitSeen && this.inFlight === 0) this.conn?.end();
  }
}
