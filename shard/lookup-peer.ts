// One lookup as a shard sees it, as nsqd's lookupPeer: a TCP connection speaking "  V1" (IDENTIFY,
// REGISTER/UNREGISTER, PING) that reconnects by itself with jittered backoff and re-registers all the
// shard holds on every connect. Also the types registration.ts and the peers share.

import net from 'node:net';
import { parseHostPort } from '../runtime/config';
import type { Logger } from '../runtime/logger';
import { LookupResponseDecoder, MAGIC_V1, encodeIdentify, encodePing, encodeRegister, encodeUnregister } from '../wire/lookup-v1';

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
