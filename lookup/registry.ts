// The lookup's registration DB, mirroring nsqlookupd's RegistrationDB: which producers (nodes) hold
// which topics and channels, when each last pinged, and which topic producers are tombstoned. Pure; time is injected.

import { isEphemeral } from '../wire/names';

/** One connected node, as it identified itself. Shared by all of its registrations, so a PING refreshes them all. */
export interface Peer {
  /** nsqlookupd keys a node by its connection's remote address ("ip:port"), not by what it claims. */
  readonly id: string;
  readonly remoteAddress: string;
  readonly hostname: string;
  readonly broadcastAddress: string;
  readonly tcpPort: number;
  readonly httpPort: number;
  readonly version: string;
  /** Monotonic ms of the IDENTIFY or the latest PING (REGISTER does not count, as in nsqlookupd). */
  lastUpdate: number;
}

/** A peer's membership in one registration; the tombstone lives here, so it is per topic. */
interface Producer {
  readonly peer: Peer;
  tombstonedAt: number | null;
}

type ProducerMap = Map<string, Producer>;

export interface RegistryOptions {
  now: () => number;
  inactiveProducerTimeoutMs: number;
  tombstoneLifetimeMs: number;
}

export interface NodeView {
  peer: Peer;
  topics: string[];
  /** tombstones[i] says whether this node is tombstoned for topics[i]. */
  tombstones: boolean[];
}

/**
 * Three kinds of registration, as in nsqlookupd: "client" (every identified peer), "topic" and
 * "channel". A registration key outlives its producers (nsqlookupd leaves empty keys in place), so a
 * topic stays listed after its last node disconnects until someone deletes it.
 */
export class Registry {
  private readonly clients: ProducerMap = new Map();
  private readonly topicRegs = new Map<string, ProducerMap>();
  private readonly channelRegs = new Map<string, Map<string, ProducerMap>>();

  constructor(private readonly opts: RegistryOptions) {}

  /** Records a freshly identified peer; returns it with lastUpdate set to now. */
  identify(info: Omit<Peer, 'lastUpdate'>): Peer {
    const peer: Peer = { ...info, lastUpdate: this.opts.now() };
    addProducer(this.clients, peer);
    return peer;
  }

  ping(peer: Peer): void {
    peer.lastUpdate = this.opts.now();
  }

  /** REGISTER topic [channel]: the channel (if any) and always the topic. Returns the keys newly joined. */
  register(peer: Peer, topic: string, channel = ''): { topicAdded: boolean; channelAdded: boolean } {
    const channelAdded = channel !== '' && addProducer(this.channelMap(topic, channel), peer);
    const topicAdded = addProducer(this.topicMap(topic), peer);
    return { topicAdded, channelAdded };
  }

  /**
   * UNREGISTER topic [channel]. With a channel, only that channel (dropped entirely if ephemeral and
   * now empty). Without one, the peer leaves every channel of the topic and the topic itself (the
   * topic key is dropped if ephemeral and empty; its channel keys stay, as in nsqlookupd).
   */
  unregister(peer: Peer, topic: string, channel = ''): void {
    if (channel !== '') {
      this.unregisterChannel(peer, topic, channel);
      return;
    }
    for (const producers of this.channelRegs.get(topic)?.values() ?? []) producers.delete(peer.id);
    const producers = this.topicRegs.get(topic);
    if (producers === undefined) return;
    producers.delete(peer.id);
    if (producers.size === 0 && isEphemeral(topic)) this.topicRegs.delete(topic);
  }

  private unregisterChannel(peer: Peer, topic: string, channel: string): void {
    const producers = this.channelRegs.get(topic)?.get(channel);
    if (producers === undefined) return;
    producers.delete(peer.id);
    if (producers.size === 0 && isEphemeral(channel)) this.removeChannelKey(topic, channel);
  }

  /** A disconnect: the peer leaves every registration, but the keys stay (even ephemeral ones). */
  removePeer(id: string): void {
    this.clients.delete(id);
    for (const producers of this.topicRegs.values()) producers.delete(id);
    for (const channels of this.channelRegs.values()) for (const producers of channels.values()) producers.delete(id);
  }

  // --- administrative actions (HTTP) ---

  createTopic(topic: string): void {
    this.topicMap(topic);
  }

  /** Removes the topic key and all of its channel keys, producers and all. */
  deleteTopic(topic: string): void {
    this.channelRegs.delete(topic);
    this.topicRegs.delete(topic);
  }

  createChannel(topic: string, channel: string): void {
    this.channelMap(topic, channel);
    this.topicMap(topic);
  }

  /** Returns false when there is no such channel key (nsqlookupd's CHANNEL_NOT_FOUND). */
  deleteChannel(topic: string, channel: string): boolean {
    if (this.channelRegs.get(topic)?.get(channel) === undefined) return false;
    this.removeChannelKey(topic, channel);
    return true;
  }

  /** Tombstones every producer of the topic whose "broadcast_address:http_port" equals node; returns how many. */
  tombstone(topic: string, node: string): number {
    let count = 0;
    for (const producer of this.topicRegs.get(topic)?.values() ?? []) {
      if (`${producer.peer.broadcastAddress}:${producer.peer.httpPort}` !== node) continue;
      producer.tombstonedAt = this.opts.now();
      count++;
    }
    return count;
  }

  // --- queries ---

  topics(): string[] {
    return [...this.topicRegs.keys()];
  }

  /** Channel keys of a topic, whether or not anyone produces them. */
  channels(topic: string): string[] {
    return [...(this.channelRegs.get(topic)?.keys() ?? [])];
  }

  /** null when the topic key does not exist; otherwise its channels and its active, untombstoned producers. */
  lookup(topic: string): { channels: string[]; producers: Peer[] } | null {
    const producers = this.topicRegs.get(topic);
    if (producers === undefined) return null;
    const active: Peer[] = [];
    for (const p of producers.values()) if (this.isActive(p.peer) && !this.isTombstoned(p)) active.push(p.peer);
    return { channels: this.channels(topic), producers: active };
  }

  /** Every active identified peer with its topics; tombstoned peers are listed (flagged), not hidden. */
  nodes(): NodeView[] {
    const out: NodeView[] = [];
    for (const { peer } of this.clients.values()) {
      if (!this.isActive(peer)) continue;
      const topics: string[] = [];
      const tombstones: boolean[] = [];
      for (const [topic, producers] of this.topicRegs) {
        const producer = producers.get(peer.id);
        if (producer === undefined) continue;
        topics.push(topic);
        tombstones.push(this.isTombstoned(producer));
      }
      out.push({ peer, topics, tombstones });
    }
    return out;
  }

  /** Inactive means no IDENTIFY/PING for strictly longer than the timeout (nsqlookupd's FilterByActive). */
  private isActive(peer: Peer): boolean {
    return this.opts.now() - peer.lastUpdate <= this.opts.inactiveProducerTimeoutMs;
  }

  /** A tombstone expires by itself after the lifetime; nothing needs to sweep it. */
  private isTombstoned(p: Producer): boolean {
    return p.tombstonedAt !== null && this.opts.now() - p.tombstonedAt < this.opts.tombstoneLifetimeMs;
  }

  private topicMap(topic: string): ProducerMap {
    let producers = this.topicRegs.get(topic);
    if (producers === undefined) this.topicRegs.set(topic, (producers = new Map()));
    return producers;
  }

  private channelMap(topic: string, channel: string): ProducerMap {
    let channels = this.channelRegs.get(topic);
    if (channels === undefined) this.channelRegs.set(topic, (channels = new Map()));
    let producers = channels.get(channel);
    if (producers === undefined) channels.set(channel, (producers = new Map()));
    return producers;
  }

  private removeChannelKey(topic: string, channel: string): void {
    const channels = this.channelRegs.get(topic);
    if (channels === undefined) return;
    channels.delete(channel);
    if (channels.size === 0) this.channelRegs.delete(topic);
  }
}

/** Adds the peer unless it is already there (so an existing tombstone survives a re-REGISTER). */
function addProducer(producers: ProducerMap, peer: Peer): boolean {
  if (producers.has(peer.id)) return false;
  producers.set(peer.id, { peer, tombstonedAt: null });
  return true;
}
