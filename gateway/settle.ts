// Settling leases on shards (finish, requeue, touch, status), coalesced: everything bound for the
// same shard, operation, topic and channel waits in one lane, and while a lane's calls are in
// flight, new items gather and go together in the next call — so a thousand clients acking one
// message each cost a handful of shard calls, as the publisher does for single publishes.

import type { LeaseClient, SettleItem, SettleOp, SettleOutcome } from './lease-client';

export interface SettlerOptions {
  /** Calls in flight per lane. */
  inFlight: number;
  /** Items per call (a batch larger than this still goes in one call). */
  maxItems: number;
}

export const DEFAULT_SETTLER_OPTIONS: SettlerOptions = { inFlight: 2, maxItems: 2000 };

interface Entry {
  items: readonly SettleItem[];
  resolve(o: SettleOutcome[]): void;
}

interface Lane {
  client: LeaseClient;
  op: SettleOp;
  topic: string;
  channel: string;
  queue: Entry[];
  inFlight: number;
}

/** Outcome when the shard could not be reached or answered badly (the lease is left to expire). */
export const UNAVAILABLE: SettleOutcome = { status: 'SHARD_UNAVAILABLE' };

export class Settler {
  private readonly lanes = new Map<string, Lane>();
  /** Running totals, for metrics and tests. */
  readonly counts = { calls: 0, items: 0, failures: 0 };

  constructor(private readonly opts: SettlerOptions = DEFAULT_SETTLER_OPTIONS) {}

  /** Settles items of one shard, topic and channel; one outcome per item, in order. */
  settleAll(client: LeaseClient, op: SettleOp, topic: string, channel: string, items: readonly SettleItem[]): Promise<SettleOutcome[]> {
    if (items.length === 0) return Promise.resolve([]);
    const key = client.address + '\u0000' + op + '\u0000' + topic + '\u0000' + channel;
    let lane = this.lanes.get(key);
    if (!lane) this.lanes.set(key, (lane = { client, op, topic, channel, queue: [], inFlight: 0 }));
    const l = lane;
    return new Promise((resolve) => {
      l.queue.push({ items, resolve });
      if (l.inFlight < this.opts.inFlight) this.send(key, l);
    });
  }

  settle(client: LeaseClient, op: SettleOp, topic: string, channel: string, item: SettleItem): Promise<SettleOutcome> {
    return this.settleAll(client, op, topic, channel, [item]).then((o) => o[0]);
  }

  private send(key: string, lane: Lane): void {
    // Deferred one tick so that what arrives in the same tick shares the call.
    lane.inFlight++;
    setImmediate(() => {
      const batch: Entry[] = [];
      let count = 0;
      while (lane.queue.length > 0 && (count === 0 || count + lane.queue[0].items.length <= this.opts.maxItems)) {
        const e = lane.queue.shift()!;
        batch.push(e);
        count += e.items.length;
      }
      if (batch.length === 0) {
        lane.inFlight--;
        if (lane.inFlight === 0 && this.lanes.get(key) === lane) this.lanes.delete(key);
        return;
      }
      const items = batch.length === 1 ? batch[0].items : batch.flatMap((e) => e.items);
      this.counts.calls++;
      this.counts.items += items.length;
      lane.client
        .settle(lane.op, lane.topic, lane.channel, items)
        .then(
          (outcomes) => {
            let o = 0;
            for (const e of batch) {
              e.resolve(outcomes.slice(o, o + e.items.length));
              o += e.items.length;
            }
          },
          (err: unknown) => {
            this.counts.failures++;
            const status = (err as { status?: number })?.status;
            const code = (err as { code?: string })?.code;
            // A 4xx for the whole call (say, a shard without this route) is reported as such.
            const one: SettleOutcome = typeof status === 'number' && status >= 400 && status < 500 ? { status: 'SHARD_REFUSED:' + (code ?? status) } : UNAVAILABLE;
            for (const e of batch) e.resolve(e.items.map(() => one));
          },
        )
        .finally(() => {
          lane.inFlight--;
          if (lane.queue.length > 0 && lane.inFlight < this.opts.inFlight) this.send(key, lane);
          else if (lane.inFlight === 0 && lane.queue.length === 0 && this.lanes.get(key) === lane) this.lanes.delete(key);
        });
    });
  }

  get pending(): number {
    let n = 0;
    for (const l of this.lanes.values()) for (const e of l.queue) n += e.items.length;
    return n;
  }
}
