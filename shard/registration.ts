// Telling lookups what this shard holds, as nsqd's lookupLoop (nsqd/lookup.go) and lookupPeer do: one
// LookupPeer per lookup TCP address speaks "  V1" (IDENTIFY, REGISTER/UNREGISTER, PING) and reconnects by
// itself; a new topic asks every lookup's HTTP /channels for the channels it has elsewhere in the cluster.

import net from 'node:net';
import { Agent, request } from 'undici';
import { parseHostPort } from '../runtime/config';
import type { Logger } from '../runtime/logger';
import { LookupResponseDecoder, MAGIC_V1, encodeIdentify, encodePing, encodeRegister, encodeUnregister } from '../wire/lookup-v1';
import { isEphemeral, isValidName } from '../wire/names';
import type { EngineListener } from './engine/engine';

/** The IDENTIFY body: the five fields nsqd's connectCallback sends, under nsqd's names. */
export interface Announcement {
  broadcast_address: string;
  hostname: string;
  tcp_port: number;
  http_port: number;
  version: string;
}

/** A topic and its channels as held now; a topic without channels is registered on its own. */
export interface Holding {
  topic: string;
  channels: string[];
}

export interface RegistrationOptions {
  /** How often each lookup is sent a PING (nsqd: every 15 s); also the longest wait between reconnects. */
  pingIntervalMs: number;
  /** nsqd dials with a 1 s timeout. */
  connectTimeoutMs: number;
  /** A lookup that leaves a command unanswered this long is treated as dead and reconnected. */
  responseTimeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Commands that may await an answer beyond the re-registration sent on connect; past it, reconnect. */
  maxPending: number;
  /** Whole budget of one /channels query; the engine holds a new topic's messages meanwhile. */
  httpTimeoutMs: number;
}

export const DEFAULT_REGISTRATION_OPTIONS: RegistrationOptions = {
  pingIntervalMs: 15_000,
  connectTimeoutMs: 1_000,
  responseTimeoutMs: 5_000,
  backoffBaseMs: 250,
  backoffMaxMs: 15_000,
  maxPending: 10_000,
  httpTimeoutMs: 1_500,
};

const MIN_PING_INTERVAL_MS = 10;

export interface RegistrationDeps {
  logger: Logger;
  /** Read at every (re)connect, so ports bound late are told correctly. */
  announcement(): Announcement;
  /** Read when a lookup has accepted our IDENTIFY: everything to register from scratch. */
  holdings(): Holding[];
  /** For the reconnect jitter; tests pin it. */
  random?: () => number;
  /** Monotonic milliseconds. */
  now?: () => number;
}

export type PeerState = 'waiting' | 'connecting' | 'identifying' | 'ready' | 'closed';

export interface PeerStatus {
  address: string;
  state: PeerState;
  /** Failed connections since the last accepted IDENTIFY. */
  failures: number;
  /** The delay chosen before the current reconnect attempt. */
  retryInMs: number;
  pending: number;
  /** The lookup's HTTP address, from its latest IDENTIFY answer. */
  httpAddress: string | null;
}

/**
 * Delay before reconnect attempt number `failures` (1-based): base·2^(failures−1) capped at max, with
 * "equal jitter" (half fixed, half random) so shards that lost the same lookup do not return in lockstep.
 */
export function backoffDelay(failures: number, baseMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(failures - 1, 0), 30));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

/** Every topic with its channels, from anything shaped like the engine. */
export function holdingsOf(engine: { topics: ReadonlyMap<string, { channels: ReadonlyMap<string, unknown> }> }): Holding[] {
  const out: Holding[] = [];
  for (const [topic, t] of engine.topics) out.push({ topic, channels: [...t.channels.keys()] });
  return out;
}

/** host:port as Go's net.JoinHostPort writes it (IPv6 in brackets). */
function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The lookup's answer to IDENTIFY: JSON with at least its broadcast address and HTTP port (nsqd's peerInfo). */
export function parseIdentifyResponse(text: string): { broadcastAddress: string; httpPort: number } | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  const broadcastAddress = typeof o.broadcast_address === 'string' ? o.broadcast_address : '';
  const httpPort = typeof o.http_port === 'number' && Number.isInteger(o.http_port) ? o.http_port : 0;
  return { broadcastAddress, httpPort };
}

/** The channel names in a lookup's /channels answer: v1.3's {"channels":[…]} or the older {"data":{"channels":[…]}}. */
export function parseChannelsResponse(text: string): string[] {
  const v = JSON.parse(text) as { channels?: unknown; data?: { channels?: unknown } } | null;
  const list = v?.channels ?? v?.data?.channels;
  if (!Array.isArray(list)) throw new Error('no channels array');
  return list.filter((c): c is string => typeof c === 'string');
}

interface Pending {
  command: string;
  sentAt: number;
}

/** Commands sent and not yet answered, oldest first: a FIFO that does not shift arrays (a re-registration can be long). */
class Unanswered {
  private items: Pending[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(p: Pending): void {
    this.items.push(p);
  }

  peek(): Pending | undefined {
    return this.items[this.head];
  }

  shift(): Pending | undefined {
    const p = this.items[this.head];
    if (p === undefined) return undefined;
    this.head++;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return p;
  }
}

/**
 * One lookup: a connection that is re-established with backoff and, on each connect, IDENTIFYs and
 * REGISTERs everything from scratch (the lookup forgets a node when its connection closes). Commands are
 * pipelined and answered in order. Nothing here ever waits on the lookup: commands sent while not
 * connected are dropped, because the next connect re-registers the state as it is then.
 */
export class LookupPeer {
  private state: PeerState = 'waiting';
  private socket: net.Socket | null = null;
  private decoder = new LookupResponseDecoder();
  private pending = new Unanswered();
  /** Answers still owed for the re-registration, which is allowed past maxPending. */
  private snapshotLeft = 0;
  private failures = 0;
  private retryInMs = 0;
  private dropReason = '';
  private retryTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private responseTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private readonly host: string;
  private readonly port: number;
  private readonly now: () => number;
  private closing: Promise<void> | null = null;
  httpAddress: string | null = null;

  constructor(
    readonly address: string,
    private readonly opts: RegistrationOptions,
    private readonly deps: RegistrationDeps,
  ) {
    ({ host: this.host, port: this.port } = parseHostPort(address));
    this.now = deps.now ?? (() => performance.now());
  }

  start(): void {
    if (this.state === 'waiting' && this.socket === null && this.retryTimer === undefined) this.connect();
  }

  status(): PeerStatus {
    return { address: this.address, state: this.state, failures: this.failures, retryInMs: this.retryInMs, pending: this.pending.length, httpAddress: this.httpAddress };
  }

  /** Sends a command if registered; otherwise drops it (the next connect re-registers from scratch). */
  command(bytes: Buffer, what: string): void {
    if (this.state !== 'ready') return;
    if (this.pending.length >= this.opts.maxPending + this.snapshotLeft) {
      this.deps.logger.warn('lookup not keeping up, reconnecting', { lookup: this.address, pending: this.pending.length });
      this.drop('too many unanswered commands');
      return;
    }
    this.deps.logger.debug('lookup command', { lookup: this.address, command: what });
    this.write(bytes, what);
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.state = 'closed';
    this.clearTimers();
    clearTimeout(this.retryTimer);
    const socket = this.socket;
    this.closing = socket === null || socket.destroyed ? Promise.resolve() : new Promise((resolve) => socket.once('close', () => resolve()));
    socket?.destroy();
    return this.closing;
  }

  private connect(): void {
    this.retryTimer = undefined;
    if (this.state === 'closed') return;
    this.state = 'connecting';
    this.decoder = new LookupResponseDecoder();
    this.pending = new Unanswered();
    this.snapshotLeft = 0;
    this.dropReason = '';
    const socket = net.connect({ host: this.host, port: this.port, noDelay: true });
    this.socket = socket;
    this.connectTimer = setTimeout(() => this.drop('connect timeout'), this.opts.connectTimeoutMs);
    socket.once('connect', () => this.connected(socket));
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('error', (err) => {
      if (socket === this.socket && this.dropReason === '') this.dropReason = err.message;
    });
    socket.on('close', () => this.onClose(socket));
  }

  private connected(socket: net.Socket): void {
    if (socket !== this.socket) return;
    clearTimeout(this.connectTimer);
    this.state = 'identifying';
    socket.write(MAGIC_V1);
    this.write(encodeIdentify({ ...this.deps.announcement() }), 'IDENTIFY');
  }

  private onData(socket: net.Socket, chunk: Buffer): void {
    if (socket !== this.socket) return;
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.drop(err instanceof Error ? err.message : 'bad response');
      return;
    }
    for (const frame of frames) {
      if (socket !== this.socket || this.state === 'closed') return;
      this.onResponse(frame.toString('utf8'));
    }
  }

  private onResponse(text: string): void {
    const head = this.pending.shift();
    if (head === undefined) {
      this.drop('unexpected response');
      return;
    }
    if (this.snapshotLeft > 0) this.snapshotLeft--;
    this.armResponseTimer();
    if (head.command === 'IDENTIFY') this.identified(text);
    // Every lookup error is fatal there: it answers, then closes the connection, and we reconnect.
    else if (text !== 'OK') this.deps.logger.warn('lookup refused command', { lookup: this.address, command: head.command, response: text });
  }

  private identified(text: string): void {
    const info = parseIdentifyResponse(text);
    if (info === null) {
      this.deps.logger.log(this.failures === 0 ? 'error' : 'debug', 'lookup refused IDENTIFY', { lookup: this.address, response: text });
      this.drop('IDENTIFY refused');
      return;
    }
    // As nsqd's lookupdHTTPAddrs: a lookup that names no broadcast address cannot be asked over HTTP.
    this.httpAddress = info.broadcastAddress === '' || info.httpPort <= 0 ? null : joinHostPort(info.broadcastAddress, info.httpPort);
    if (this.httpAddress === null) this.deps.logger.error('lookup gave no HTTP address', { lookup: this.address, response: text });
    this.failures = 0;
    this.retryInMs = 0;
    this.state = 'ready';
    let registered = 0;
    for (const { topic, channels } of this.deps.holdings()) {
      if (channels.length === 0) {
        this.write(encodeRegister(topic), `REGISTER ${topic}`);
        registered++;
      }
      for (const channel of channels) {
        this.write(encodeRegister(topic, channel), `REGISTER ${topic} ${channel}`);
        registered++;
      }
    }
    this.snapshotLeft = registered;
    this.deps.logger.info('lookup connected', { lookup: this.address, lookupHttp: this.httpAddress, registered });
    this.pingTimer = setInterval(() => this.command(encodePing(), 'PING'), this.opts.pingIntervalMs);
  }

  private write(bytes: Buffer, what: string): void {
    this.pending.push({ command: what, sentAt: this.now() });
    if (this.pending.length === 1) this.armResponseTimer();
    this.socket!.write(bytes);
  }

  private armResponseTimer(): void {
    clearTimeout(this.responseTimer);
    this.responseTimer = undefined;
    const head = this.pending.peek();
    if (head === undefined) return;
    const left = head.sentAt + this.opts.responseTimeoutMs - this.now();
    this.responseTimer = setTimeout(() => this.drop(`no answer to ${head.command.split(' ')[0]}`), Math.max(0, left));
  }

  /** Ends the current connection at once (so later commands are dropped, not queued) and schedules the reconnect. */
  private drop(reason: string): void {
    const socket = this.socket;
    if (socket === null) return;
    if (this.dropReason === '') this.dropReason = reason;
    this.onClose(socket);
    socket.destroy();
  }

  private onClose(socket: net.Socket): void {
    if (socket !== this.socket) return;
    this.socket = null;
    this.clearTimers();
    if (this.state === 'closed') return;
    const was = this.state;
    this.failures++;
    const cap = Math.min(this.opts.backoffMaxMs, this.opts.pingIntervalMs);
    this.retryInMs = backoffDelay(this.failures, Math.min(this.opts.backoffBaseMs, cap), cap, this.deps.random ?? Math.random);
    const fields = { lookup: this.address, reason: this.dropReason || 'closed', failures: this.failures, retryInMs: this.retryInMs, unanswered: this.pending.length };
    // The first failure of a streak is worth a warning; the retries after it are not.
    if (was === 'ready') this.deps.logger.warn('lookup disconnected', fields);
    else this.deps.logger.log(this.failures === 1 ? 'warn' : 'debug', 'lookup unreachable', fields);
    this.pending = new Unanswered();
    this.state = 'waiting';
    this.retryTimer = setTimeout(() => this.connect(), this.retryInMs);
  }

  private clearTimers(): void {
    clearTimeout(this.connectTimer);
    clearTimeout(this.responseTimer);
    clearInterval(this.pingTimer);
    this.connectTimer = this.responseTimer = this.pingTimer = undefined;
  }
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
