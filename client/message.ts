// A message as a consumer hands it out: its fields plus finish / requeue / touch, each sent on
// the connection that delivered it. Once finished or requeued it is settled and further calls
// do nothing (the server would answer E_FIN_FAILED anyway).

import type { WireMessage } from '../wire/message';

/** What a message needs from its consumer (kept narrow so the consumer is free to change). */
export interface MessageSettler {
  /** Each returns false when the delivering connection is gone (the server will redeliver). */
  finish(m: Message): boolean;
  requeue(m: Message, delayMs: number, backoff: boolean): boolean;
  touch(m: Message): boolean;
  defaultRequeueDelayMs(m: Message): number;
}

export class Message {
  readonly id: string;
  /** Deliveries so far, this one included (1 on the first delivery). */
  readonly attempts: number;
  /** When it was published: nanoseconds since the Unix epoch (exact to ~256 ns). */
  readonly timestamp: number;
  readonly body: Buffer;
  private settled = false;

  constructor(
    wire: WireMessage,
    readonly topic: string,
    readonly channel: string,
    /** "host:port" of the node that delivered it. */
    readonly address: string,
    /** How long it may stay in flight before the server requeues it (ms, touches extend it). */
    readonly msgTimeoutMs: number,
    private readonly settler: MessageSettler,
  ) {
    this.id = wire.id;
    this.attempts = wire.attempts;
    this.timestamp = wire.timestamp;
    this.body = wire.body;
  }

  /** Finished or requeued already. */
  get hasResponded(): boolean {
    return this.settled;
  }

  /** FIN: done with it. Returns false if it could not be sent (the connection is gone). */
  finish(): boolean {
    if (this.settled) return false;
    this.settled = true;
    return this.settler.finish(this);
  }

  /**
   * REQ: deliver it again after `delayMs` (default: the consumer's requeue delay). With
   * `backoff` (the default) the consumer also slows down, as go-nsq does after a failure.
   */
  requeue(delayMs?: number, backoff = true): boolean {
    if (this.settled) return false;
    this.settled = true;
    const delay = delayMs ?? this.settler.defaultRequeueDelayMs(this);
    return this.settler.requeue(this, Math.max(0, Math.round(delay)), backoff);
  }

  /** TOUCH: reset its in-flight timeout. */
  touch(): boolean {
    return this.settled ? false : this.settler.touch(this);
  }
}
