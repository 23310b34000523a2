// A per-run ledger for durability tests: what was published (and whether the publish was
// acknowledged) against what came back, counting lost, duplicated and never-seen messages.

import { call } from './shard';

export interface DurabilityReport {
  /** Publishes that were acknowledged (200) but never delivered: must be 0 when durable. */
  lost: string[];
  /** Bodies delivered more than once (allowed: delivery is at least once). */
  duplicated: string[];
  /** Publishes that failed or were in flight when the shard died, and never came back (allowed). */
  neverSeen: string[];
  /** Unacknowledged publishes that did land (allowed). */
  landedUnacked: number;
  /** Bodies delivered that nobody published: must be 0. */
  unexpected: string[];
  acked: number;
  delivered: number;
}

export class DurabilityChecker {
  private readonly acked = new Set<string>();
  private readonly attempted = new Set<string>();
  private readonly seen = new Map<string, number>();

  /** A publish is about to be sent. */
  attempt(body: string): void {
    this.attempted.add(body);
  }

  /** The publish got its success answer. */
  ack(body: string): void {
    this.acked.add(body);
  }

  delivered(body: string): void {
    this.seen.set(body, (this.seen.get(body) ?? 0) + 1);
  }

  get ackedCount(): number {
    return this.acked.size;
  }

  report(): DurabilityReport {
    const lost: string[] = [];
    const neverSeen: string[] = [];
    let landedUnacked = 0;
    for (const b of this.attempted) {
      const got = this.seen.has(b);
      if (this.acked.has(b)) {
        if (!got) lost.push(b);
      } else if (got) landedUnacked++;
      else neverSeen.push(b);
    }
    const duplicated = [...this.seen].filter(([, n]) => n > 1).map(([b]) => b);
    const unexpected = [...this.seen.keys()].filter((b) => !this.attempted.has(b));
    let delivered = 0;
    for (const n of this.seen.values()) delivered += n;
    return { lost, duplicated, neverSeen, landedUnacked, unexpected, acked: this.acked.size, delivered };
  }
}

/**
 * Reads a channel empty through the shard's lease API, finishing everything, and records each
 * delivery. Bounded: stops after `maxRounds` pulls.
 */
export async function drainInto(url: (p: string) => string, topic: string, channel: string, checker: DurabilityChecker, maxRounds = 1000): Promise<number> {
  let n = 0;
  for (let round = 0; round < maxRounds; round++) {
    const got = (await call(url(`/sluice/lease/pull?topic=${topic}&channel=${channel}&max=5000&lease_ms=60000`), 'POST')).json().messages as { id: string; token: string; body: string }[];
    if (got.length === 0) return n;
    n += got.length;
    for (const m of got) checker.delivered(Buffer.from(m.body, 'base64').toString());
    const fin = await call(url(`/sluice/lease/finish?topic=${topic}&channel=${channel}`), 'POST', JSON.stringify({ leases: got.map((m) => ({ id: m.id, token: m.token })) }));
    if (fin.status !== 200) throw new Error(`finish failed: ${fin.status} ${fin.text}`);
  }
  throw new Error(`channel ${topic}/${channel} not drained after ${maxRounds} pulls`);
}
