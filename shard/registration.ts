// Telling lookups what this shard holds, as nsqd's lookupLoop (nsqd/lookup.go) does: one LookupPeer
// (lookup-peer.ts) per lookup TCP address, kept in step with the engine's topics and channels; and a new
// topic asks every lookup's HTTP /channels for the channels it has elsewhere in the cluster.

import { Agent, request } from 'undici';
import { parseHostPort } from '../runtime/config';
import { encodeRegister, encodeUnregister } from '../wire/lookup-v1';
import { isEphemeral, isValidName } from '../wire/names';
import type { EngineListener } from './engine/engine';
import { DEFAULT_REGISTRATION_OPTIONS, LookupPeer, type Holding, type PeerStatus, type RegistrationDeps, type RegistrationOptions } from './lookup-peer';

const MIN_PING_INTERVAL_MS = 10;

/** Every topic with its channels, from anything shaped like the engine. */
export function holdingsOf(engine: { topics: ReadonlyMap<string, { channels: ReadonlyMap<string, unknown> }> }): Holding[] {
  const out: Holding[] = [];
  for (const [topic, t] of engine.topics) out.push({ topic, channels: [...t.channels.keys()] });
  return out;
}

/** The channel names in a lookup's /channels answer: v1.3's {"channels":[…]} or the older {"data":{"channels":[…]}}. */
export function parseChannelsResponse(text: string): string[] {
  const v = JSON.parse(text) as { channels?: unknown; data?: { channels?: unknown } } | null;
  const list = v?.channels ?? v?.data?.channels;
  if (!Array.isArray(list)) throw new Error('no channels array');
  return list.filter((c): c is string => typeof c === 'string');
}

/**
 * The shard's side of discovery: listens to the engine and tells every lookup, and answers the engine's
 * question "which channels does this new topic have elsewhere?" from the lookups' HTTP APIs.
 */
export class LookupRegistration implements EngineListener {
  private readonly peers = new Map<string, LookupPeer>();
  private readonly opts: RegistrationOptions;
  private readonly removed = new Set<Promise<void>>();
  private readonly queries = new Set<AbortController>();
  private readonly agent: Agent;
  private addresses: string[];
  private started = false;
  private closed = false;

  constructor(addresses: readonly string[], opts: Partial<RegistrationOptions>, private readonly deps: RegistrationDeps) {
    this.opts = { ...DEFAULT_REGISTRATION_OPTIONS, ...opts };
    // A zero interval would PING (and, through the backoff cap, reconnect) in a busy loop.
    this.opts.pingIntervalMs = Math.max(MIN_PING_INTERVAL_MS, this.opts.pingIntervalMs);
    this.addresses = validAddresses(addresses);
    this.agent = new Agent({ connectTimeout: this.opts.httpTimeoutMs, keepAliveTimeout: 10_000 });
  }

  /** Connects to every lookup; call once the shard's ports are bound. */
  start(): void {
    this.started = true;
    this.sync();
  }

  /** PUT /config/nsqlookupd_tcp_addresses: lookups no longer named are closed, new ones connected. */
  setAddresses(addresses: readonly string[]): void {
    this.addresses = validAddresses(addresses);
    if (this.started && !this.closed) this.sync();
  }

  status(): PeerStatus[] {
    return [...this.peers.values()].map((p) => p.status());
  }

  topicCreated(topic: string): void {
    this.broadcast(encodeRegister(topic), `REGISTER ${topic}`);
  }

  channelCreated(topic: string, channel: string): void {
    this.broadcast(encodeRegister(topic, channel), `REGISTER ${topic} ${channel}`);
  }

  channelDeleted(topic: string, channel: string): void {
    this.broadcast(encodeUnregister(topic, channel), `UNREGISTER ${topic} ${channel}`);
  }

  topicDeleted(topic: string): void {
    this.broadcast(encodeUnregister(topic), `UNREGISTER ${topic}`);
  }

  /**
   * The channels a new topic has on other shards, from every lookup that has told us its HTTP address
   * (including ones down right now, as nsqd does; they fail fast or time out). Failures count as "none";
   * #ephemeral channels are left out, as nsqd leaves them until a consumer asks for one.
   */
  async channelsElsewhere(topic: string): Promise<string[]> {
    const targets = new Set<string>();
    for (const p of this.peers.values()) if (p.httpAddress !== null) targets.add(p.httpAddress);
    if (targets.size === 0) {
      if (this.peers.size > 0) this.deps.logger.warn('no lookup to ask for channels', { topic });
      return [];
    }
    const answers = await Promise.all([...targets].map((a) => this.queryChannels(a, topic)));
    const merged = new Set<string>();
    for (const list of answers) for (const c of list) if (isValidName(c) && !isEphemeral(c)) merged.add(c);
    return [...merged];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const ac of this.queries) ac.abort();
    const all = [...this.peers.values()].map((p) => p.close());
    this.peers.clear();
    await Promise.all([...all, ...this.removed]);
    await this.agent.destroy();
  }

  private sync(): void {
    for (const [address, peer] of this.peers) {
      if (this.addresses.includes(address)) continue;
      this.deps.logger.info('removing lookup', { lookup: address });
      this.peers.delete(address);
      const closing = peer.close();
      this.removed.add(closing);
      void closing.then(() => this.removed.delete(closing));
    }
    for (const address of this.addresses) {
      if (this.peers.has(address)) continue;
      this.deps.logger.info('adding lookup', { lookup: address });
      const peer = new LookupPeer(address, this.opts, this.deps);
      this.peers.set(address, peer);
      peer.start();
    }
  }

  private broadcast(bytes: Buffer, what: string): void {
    for (const p of this.peers.values()) p.command(bytes, what);
  }

  private async queryChannels(httpAddress: string, topic: string): Promise<string[]> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), this.opts.httpTimeoutMs);
    this.queries.add(ac);
    try {
      const res = await request(`http://${httpAddress}/channels?topic=${encodeURIComponent(topic)}`, {
        dispatcher: this.agent,
        signal: ac.signal,
        headers: { accept: 'application/vnd.nsq; version=1.0' },
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
      return parseChannelsResponse(text);
    } catch (err) {
      if (!this.closed) this.deps.logger.warn('lookup channels query failed', { lookupHttp: httpAddress, topic, error: ac.signal.aborted ? 'timeout' : errorText(err) });
      return [];
    } finally {
      clearTimeout(timer);
      this.queries.delete(ac);
    }
  }
}

/** Unique addresses in order; each must be host:port (parseHostPort throws a ConfigError otherwise). */
function validAddresses(addresses: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of addresses) {
    parseHostPort(a);
    if (!out.includes(a)) out.push(a);
  }
  return out;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}
