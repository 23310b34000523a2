// A message as a channel holds it: the wire fields plus the delivery state the channel keeps
// while it is in flight or deferred. Every channel holds its own Message; bodies are shared.
//
// Kept small on purpose, since a shard holds one per message per channel: most messages are
// published, queued and emptied or delivered once, so the delivery state lives in a side object
// made only for a message that is put in flight or deferred, and the timestamp is kept as two
// small integers rather than one double (V8 gives every object its own heap box for a double
// field, on top of the object itself).

import type { WireMessage } from '../../wire/message';

/** Owner id used for messages handed out through the lease API rather than to a connection. */
export const LEASE_OWNER = 0;

/** 2^31: the timestamp is split at this power of two into parts that fit V8's small integers. */
const TS_SPLIT = 2147483648;

/** What a channel keeps about one message's delivery; made on first use, then kept. */
class Delivery {
  ownerId = -1;
  token = '';
  pri = 0;
  heapIndex = -1;
  deliveredAt = 0;
  timeoutMs = 0;
  journalSeq = 0;
  deferUntil = 0;
  deferDueMono = 0;
}

export class Message implements WireMessage {
  attempts = 0;
  /** The timestamp is tsHigh * 2^31 + tsLow, exactly (see the constructor). */
  private readonly tsHigh: number;
  private readonly tsLow: number;
  private d: Delivery | null = null;

  constructor(
    readonly id: string,
    readonly body: Buffer,
    timestamp: number,
  ) {
    // For an integer below 2^62 in magnitude (every timestamp in ns until the year 2116) both
    // parts are integers below 2^31, which V8 keeps in the object itself. Any other double still
    // comes back exactly: truncating keeps the remainder's sign, so it is just the low bits of the
    // value, and 0, -0, NaN and the infinities are kept whole in the high part.
    if (timestamp === 0 || !Number.isFinite(timestamp)) {
      this.tsHigh = timestamp;
      this.tsLow = 0;
    } else {
      const high = Math.trunc(timestamp / TS_SPLIT) + 0; // + 0: no -0 for a small negative value
      this.tsHigh = high;
      this.tsLow = timestamp - high * TS_SPLIT;
    }
  }

  /** Nanoseconds since the Unix epoch (the publish time). */
  get timestamp(): number {
    // (the branch keeps -0 and the values kept whole: adding a zero remainder would change -0)
    return this.tsLow === 0 ? this.tsHigh * TS_SPLIT : this.tsHigh * TS_SPLIT + this.tsLow;
  }

  private delivery(): Delivery {
    return this.d ?? (this.d = new Delivery());
  }

  // Each field below reads its default while the message has no delivery state, and setting a
  // field to its default does not create one (a channel resets the deferral of every message).

  /** Who holds it in flight: a consumer id, or LEASE_OWNER; -1 when not in flight. */
  get ownerId(): number {
    return this.d === null ? -1 : this.d.ownerId;
  }
  set ownerId(v: number) {
    if (this.d !== null || v !== -1) this.delivery().ownerId = v;
  }

  /** Identifies one delivery; a lease holder must present it to finish, requeue or touch. */
  get token(): string {
    return this.d === null ? '' : this.d.token;
  }
  set token(v: string) {
    if (this.d !== null || v !== '') this.delivery().token = v;
  }

  /** Heap priority: in-flight deadline or deferred due time (monotonic ms). */
  get pri(): number {
    return this.d === null ? 0 : this.d.pri;
  }
  set pri(v: number) {
    if (this.d !== null || v !== 0) this.delivery().pri = v;
  }

  /** Position in whichever heap holds it; -1 when in none. */
  get heapIndex(): number {
    return this.d === null ? -1 : this.d.heapIndex;
  }
  set heapIndex(v: number) {
    if (this.d !== null || v !== -1) this.delivery().heapIndex = v;
  }

  /** When the current delivery started (monotonic ms). */
  get deliveredAt(): number {
    return this.d === null ? 0 : this.d.deliveredAt;
  }
  set deliveredAt(v: number) {
    if (this.d !== null || v !== 0) this.delivery().deliveredAt = v;
  }

  /** How long the current delivery lasts before it times out (ms); a touch extends by this much. */
  get timeoutMs(): number {
    return this.d === null ? 0 : this.d.timeoutMs;
  }
  set timeoutMs(v: number) {
    if (this.d !== null || v !== 0) this.delivery().timeoutMs = v;
  }

  /** Its TAKE record in the channel's crash journal while in flight or deferred; 0 when none. */
  get journalSeq(): number {
    return this.d === null ? 0 : this.d.journalSeq;
  }
  set journalSeq(v: number) {
    if (this.d !== null || v !== 0) this.delivery().journalSeq = v;
  }

  /** Wall-clock due time of a deferred publish still buffered in its topic; 0 when none. */
  get deferUntil(): number {
    return this.d === null ? 0 : this.d.deferUntil;
  }
  set deferUntil(v: number) {
    if (this.d !== null || v !== 0) this.delivery().deferUntil = v;
  }

  /**
   * The same due time on this process's monotonic clock, while the message object has stayed in
   * memory since it was published; 0 when unknown (read back from a disk queue, or saved before a
   * restart). Only a wall-clock step between publish and delivery tells the two apart.
   */
  get deferDueMono(): number {
    return this.d === null ? 0 : this.d.deferDueMono;
  }
  set deferDueMono(v: number) {
    if (this.d !== null || v !== 0) this.delivery().deferDueMono = v;
  }

  /** A fresh copy for another channel: same id, body and timestamp, no delivery state. */
  copy(): Message {
    const m = new Message(this.id, this.body, this.timestamp);
    m.attempts = this.attempts;
    if (this.d !== null) {
      m.deferUntil = this.d.deferUntil;
      m.deferDueMono = this.d.deferDueMono;
    }
    return m;
  }
}
