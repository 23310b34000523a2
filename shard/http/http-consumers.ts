// What the gateways told this shard about their HTTP consumers (SSE streams, long-polls), per
// channel, each gateway's entries kept for the ttl_ms of its last report or heartbeat. Gateways do
// not know each other; the shards every gateway and admin already talk to are where the reports
// meet. Pure: the clock is injected, nothing here touches the network.

import type { EngineListener } from '../engine/engine';
import { channelKey, ConsumerReport, isEmptyChannel, isFull, ReportedChannel } from '../../wire/consumer-report';
import type { HttpConsumerStats } from '../../wire/nsqd-stats';

/** More gateways than this at once is refused (a stray client inventing ids cannot grow the table without bound). */
export const MAX_GATEWAYS = 4096;
/** Channel entries over every gateway at once: bounds the table's memory whatever ids and reports arrive. */
export const MAX_ENTRIES = 200_000;

export type ApplyResult = 'OK' | 'REPORT_UNKNOWN' | 'TOO_MANY_GATEWAYS' | 'TOO_MANY_ENTRIES';

interface GatewayEntry {
  id: string;
  address: string;
  /** -1 once the shard dropped some of its entries (a channel was deleted): the next delta is refused. */
  version: number;
  /** Monotonic ms of the last report or heartbeat, and when its entries expire. */
  heardAt: number;
  expiresAt: number;
  channels: Map<string, ReportedChannel>;
}

export class HttpConsumerRegistry implements EngineListener {
  private readonly gateways = new Map<string, GatewayEntry>();
  /** topic → channel → gateway id → counts: /stats asks per channel. */
  private readonly byTopic = new Map<string, Map<string, Map<string, ReportedChannel>>>();
  /** Channel entries held over every gateway. */
  private entries = 0;

  constructor(private readonly now: () => number) {}

  /** Applies a full report or a delta; a delta against a version this shard does not hold is REPORT_UNKNOWN. */
  apply(r: ConsumerReport): ApplyResult {
    const now = this.now();
    this.prune(now);
    let g = this.gateways.get(r.gateway.id);
    // Refused before anything changes: a report that would take the table past MAX_ENTRIES.
    const added = isFull(r)
      ? r.channels.length - (g ? g.channels.size : 0)
      : g && g.version === r.base
        ? r.changes.filter((c) => !isEmptyChannel(c) && !g!.channels.has(channelKey(c.topic, c.channel))).length
        : 0;
    if (added > 0 && this.entries + added > MAX_ENTRIES) return 'TOO_MANY_ENTRIES';
    if (isFull(r)) {
      if (g) this.clear(g);
      if (r.channels.length === 0) {
        // The gateway has no consumers (or is shutting down): forget it at once.
        this.gateways.delete(r.gateway.id);
        return 'OK';
      }
      if (!g) {
        if (this.gateways.size >= MAX_GATEWAYS) return 'TOO_MANY_GATEWAYS';
        g = { id: r.gateway.id, address: r.gateway.address, version: r.version, heardAt: now, expiresAt: 0, channels: new Map() };
        this.gateways.set(g.id, g);
      }
      for (const c of r.channels) this.put(g, c);
    } else {
      if (!g || g.version !== r.base) return 'REPORT_UNKNOWN';
      for (const c of r.changes) {
        if (isEmptyChannel(c)) this.remove(g, c.topic, c.channel);
        else this.put(g, c);
      }
    }
    g.address = r.gateway.address;
    g.version = r.version;
    g.heardAt = now;
    g.expiresAt = now + r.ttl_ms;
    return 'OK';
  }

  /** The live entries of one channel, one per gateway, sorted by gateway id. */
  channel(topic: string, channel: string): HttpConsumerStats[] {
    const per = this.byTopic.get(topic)?.get(channel);
    if (!per) return [];
    const now = this.now();
    const out: HttpConsumerStats[] = [];
    for (const [id, c] of per) {
      const g = this.gateways.get(id);
      if (!g || g.expiresAt <= now) continue;
      out.push({ gateway_id: id, gateway_address: g.address, streams: c.streams, long_polls: c.long_polls, in_flight: c.in_flight, held: c.held, age_ms: Math.max(0, Math.round(now - g.heardAt)) });
    }
    return out.sort((a, b) => (a.gateway_id < b.gateway_id ? -1 : a.gateway_id > b.gateway_id ? 1 : 0));
  }

  /** Gateways currently held (expired ones are dropped first). */
  get gatewayCount(): number {
    this.prune(this.now());
    return this.gateways.size;
  }

  /** Drops every gateway whose entries have expired. */
  prune(now = this.now()): void {
    for (const g of this.gateways.values()) {
      if (g.expiresAt > now) continue;
      this.clear(g);
      this.gateways.delete(g.id);
    }
  }

  // ---- a deleted channel or topic takes its entries with it ----

  channelDeleted(topic: string, channel: string): void {
    const per = this.byTopic.get(topic)?.get(channel);
    if (!per) return;
    for (const id of [...per.keys()]) {
      const g = this.gateways.get(id);
      if (g) this.dropFrom(g, topic, channel);
    }
  }

  topicDeleted(topic: string): void {
    const channels = this.byTopic.get(topic);
    if (!channels) return;
    for (const channel of [...channels.keys()]) this.channelDeleted(topic, channel);
  }

  /** Removes what the shard dropped on its own; the gateway's next delta is refused, so it resends in full. */
  private dropFrom(g: GatewayEntry, topic: string, channel: string): void {
    this.remove(g, topic, channel);
    g.version = -1;
  }

  private put(g: GatewayEntry, c: ReportedChannel): void {
    const key = channelKey(c.topic, c.channel);
    if (!g.channels.has(key)) this.entries++;
    g.channels.set(key, c);
    let channels = this.byTopic.get(c.topic);
    if (!channels) this.byTopic.set(c.topic, (channels = new Map()));
    let per = channels.get(c.channel);
    if (!per) channels.set(c.channel, (per = new Map()));
    per.set(g.id, c);
  }

  private remove(g: GatewayEntry, topic: string, channel: string): void {
    if (g.channels.delete(channelKey(topic, channel))) this.entries--;
    const channels = this.byTopic.get(topic);
    const per = channels?.get(channel);
    if (!channels || !per) return;
    per.delete(g.id);
    if (per.size === 0) channels.delete(channel);
    if (channels.size === 0) this.byTopic.delete(topic);
  }

  private clear(g: GatewayEntry): void {
    for (const c of [...g.channels.values()]) this.remove(g, c.topic, c.channel);
  }
}
