// A message as a channel holds it: the wire fields plus the delivery state the channel keeps
// while it is in flight or deferred. Every channel holds its own Message; bodies are shared.

import type { WireMessage } from '../../wire/message';

/** Owner id used for messages handed out through the lease API rather than to a connection. */
export const LEASE_OWNER = 0;

export class Message implements WireMessage {
  attempts = 0;
  /** Who holds it in flight: a consumer id, or LEASE_OWNER. */
  ownerId = -1;
  /** Identifies one delivery; a lease holder must present it to finish, requeue or touch. */
  token = '';
  /** Heap priority: in-flight deadline or deferred due time (monotonic ms). */
  pri = 0;
  /** Position in whichever heap holds it; -1 when in none. */
  heapIndex = -1;
  /** When the current delivery started (monotonic ms). */
  deliveredAt = 0;
  /** How long the current delivery lasts before it times out (ms); a touch extends by this much. */
  timeoutMs = 0;
  /** Its TAKE record in the channel's crash journal while in flight or deferred; 0 when none. */
  journalSeq = 0;
  /** Wall-clock due time of a deferred publish still buffered in its topic; 0 when none. */
  deferUntil = 0;
  /**
   * The same due time on this process's monotonic clock, while the message object has stayed in
   * memory since it was published; 0 when unknown (read back from a disk queue, or saved before a
   * restart). Only a wall-clock step between publish and delivery tells the two apart.
   */
  deferDueMono = 0;

  constructor(
    readonly id: string,
    readonly body: Buffer,
    readonly timestamp: number,
  ) {}

  /** A fresh copy for another channel: same id, body and timestamp, no delivery state. */
  copy(): Message {
    const m = new Message(this.id, this.body, this.timestamp);
    m.attempts = this.attempts;
    m.deferUntil = this.deferUntil;
    m.deferDueMono = this.deferDueMono;
    return m;
  }
}
