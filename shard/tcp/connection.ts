// One NSQ protocol V2 client connection: checks the "  V2" magic, decodes commands with the
// push decoder and dispatches one handler per command onto the engine; as a channel Consumer it
// writes message frames into its output buffer, flushing as nsqd's messagePump does.

import type { Socket } from 'node:net';
import type { Logger } from '../../runtime/logger';
import {
  BAD_PROTOCOL,
  checkMagic,
  checkState,
  clampReqTimeout,
  CLOSE_WAIT,
  CommandDecoder,
  errorData,
  MAGIC_LENGTH,
  OK,
  protocolError,
  V2Errors,
  validateRdy,
  type ClientState,
  type DecodedItem,
  type ProtocolError,
} from '../../wire/nsq-v2';
import type { Channel, Consumer, SettleResult } from '../engine/channel';
import type { Engine } from '../engine/engine';
import type { Message } from '../engine/message';
import { applyIdentify, negotiate, negotiationResponse, parseIdentify, type ClientSettings, type IdentifyLimits, type ServerFeatures } from './identify';
import { ClientAuth, type Authenticator } from './client-auth';
import { Link } from './link';
import type { Upgrades } from './transport';

export interface ProtocolOptions extends IdentifyLimits {
  maxRdyCount: number;
  maxMsgSize: number;
  maxBodySize: number;
  maxReqTimeoutMs: number;
  /** --msg-timeout: a client's msg_timeout until it IDENTIFYs another. */
  msgTimeoutMs: number;
  /** nsqd's default heartbeat: --client-timeout / 2 = 30 s. */
  heartbeatIntervalMs: number;
  /** nsqd's default output buffer (16 KiB) and --output-buffer-timeout (250 ms). */
  outputBufferSize: number;
  outputBufferTimeoutMs: number;
  /** --max-channel-consumers; 0 = unlimited. */
  maxChannelConsumers: number;
  /** --tls-required: every command but IDENTIFY needs TLS first. */
  tlsRequired: boolean;
}

/** What the server hands every connection. */
export interface ConnectionContext {
  readonly engine: Engine;
  readonly opts: ProtocolOptions;
  readonly features: ServerFeatures;
  readonly upgrades: Upgrades;
  readonly auth: Authenticator | null;
  readonly logger: Logger;
  /** Monotonic milliseconds. */
  now(): number;
  closed(c: Connection): void;
}

// nsqd's client states as /stats shows them (stateInit … stateClosing)
const STATE_NUMBER: Record<ClientState, number> = { init: 0, subscribed: 3, closing: 4 };
const SETTLE_TEXT: Record<Exclude<SettleResult, 'ok'>, string> = {
  not_in_flight: 'ID not in flight',
  not_owner: 'client does not own message',
  stale: 'ID not in flight',
};
const CLOSE_WAIT_POLL_MS = 100;

const GO = 0; // next item
const STOP = 1; // connection is closing, drop the rest
const WAIT = 2; // a handler went async (AUTH, transport upgrade); it resumes the rest itself

export class Connection extends Link implements Consumer {
  /** The client's msg_timeout; the channel reads it at each delivery. */
  msgTimeoutMs: number;
  inFlightCount = 0;

  private state: ClientState = 'init';
  private settings: ClientSettings;
  private decoder: CommandDecoder;
  private readonly magic = Buffer.alloc(MAGIC_LENGTH);
  private magicHave = 0;
  private channel: Channel | null = null;
  private rdy = 0;
  private closeWaitTimer: NodeJS.Timeout | null = null;
  private held: DecodedItem[] | null = null;
  private heldAt = 0;
  private readonly auth: ClientAuth;

  // counters for /stats
  private messageCount = 0;
  private finishCount = 0;
  private requeueCount = 0;
  private readonly pubCounts = new Map<string, number>();
  private readonly connectTs = Math.floor(Date.now() / 1000);

  constructor(readonly id: number, socket: Socket, private readonly ctx: ConnectionContext) {
    super(socket, ctx.now, ctx.logger, ctx.opts.outputBufferSize);
    const o = ctx.opts;
    this.settings = {
      clientId: this.remoteIp,
      hostname: this.remoteIp,
      userAgent: '',
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      outputBufferSize: o.outputBufferSize,
      outputBufferTimeoutMs: o.outputBufferTimeoutMs,
      sampleRate: 0,
      msgTimeoutMs: o.msgTimeoutMs,
    };
    this.msgTimeoutMs = o.msgTimeoutMs;
    this.decoder = this.newDecoder();
    this.auth = new ClientAuth(
      ctx.auth,
      () => ({ remoteIp: this.remoteIp, tls: this.tlsInfo !== null, commonName: this.tlsInfo?.commonName ?? '' }),
      (err) => ctx.logger.warn('auth failed', { client: this.remoteAddress, error: errorText(err) }),
    );
    this.configureTimers(o.heartbeatIntervalMs, o.outputBufferTimeoutMs);
  }

  // ---- Consumer: what the channel calls ----

  capacity(): number {
    return this.state === 'subscribed' ? this.rdy - this.inFlightCount : 0;
  }

  deliver(m: Message): void {
    // nsqd: `if sampleRate > 0 && rand.Int31n(100) > sampleRate` the message is dropped for good
    if (this.settings.sampleRate > 0 && Math.floor(Math.random() * 100) > this.settings.sampleRate) {
      this.channel?.finish(m.id, this.id);
      return;
    }
    this.messageCount++;
    this.out.message(m);
    // nsqd flushes as soon as the client is not ready for more; otherwise within output_buffer_timeout
    if (this.inFlightCount >= this.rdy) this.flushSoon();
    else if (this.out.buffered > 0) this.armFlushTimer();
  }

  channelGone(): void {
    // nsqd closes the connections of a deleted channel
    this.channel = null;
    this.shutdown(false);
  }

  describe(): Record<string, unknown> {
    const s = this.settings;
    const stats: Record<string, unknown> = {
      client_id: s.clientId,
      hostname: s.hostname,
      version: 'V2',
      remote_address: this.remoteAddress,
      state: STATE_NUMBER[this.state],
      ready_count: this.rdy,
      in_flight_count: this.inFlightCount,
      message_count: this.messageCount,
      finish_count: this.finishCount,
      requeue_count: this.requeueCount,
      connect_ts: this.connectTs,
      sample_rate: s.sampleRate,
      deflate: this.deflateOn,
      snappy: this.snappyOn,
      user_agent: s.userAgent,
    };
    this.auth.describe(stats);
    // omitempty in nsqd, like the auth fields
    if (this.pubCounts.size > 0) stats.pub_counts = [...this.pubCounts].map(([topic, count]) => ({ topic, count }));
    stats.tls = this.tlsInfo !== null;
    stats.tls_cipher_suite = this.tlsInfo?.cipherSuite ?? '';
    stats.tls_version = this.tlsInfo?.version ?? '';
    stats.tls_negotiated_protocol = this.tlsInfo?.negotiatedProtocol ?? '';
    stats.tls_negotiated_protocol_is_mutual = this.tlsInfo?.negotiatedProtocolIsMutual ?? false;
    return stats;
  }

  get isProducer(): boolean {
    return this.pubCounts.size > 0;
  }

  /** Server shutdown: in-flight messages go back to the channel at once, pending output is flushed. */
  close(): void {
    this.shutdown(true);
  }

  // ---- input ----

  protected received(chunk: Buffer): void {
    if (this.magicHave < MAGIC_LENGTH) {
      const take = Math.min(MAGIC_LENGTH - this.magicHave, chunk.length);
      chunk.copy(this.magic, this.magicHave, 0, take);
      this.magicHave += take;
      if (this.magicHave < MAGIC_LENGTH) return;
      if (checkMagic(this.magic) !== 'ok') {
        this.ctx.logger.info('bad protocol magic', { client: this.remoteAddress, magic: this.magic.toString('latin1') });
        this.fail(BAD_PROTOCOL);
        return;
      }
      if (take === chunk.length) return;
      chunk = chunk.subarray(take);
    }
    this.run(this.decoder.push(chunk), 0);
  }

  protected inputEnded(): void {
    // nsqd answers a command cut short by EOF inside its size or body with that command's error
    const err = this.magicHave === MAGIC_LENGTH ? this.decoder.end() : null;
    if (err === null || this.handle(err) === GO) this.shutdown(true);
  }

  /** In-flight messages go back to the channel at once (nsqd waits for them to time out). */
  protected released(): void {
    this.state = 'closing';
    if (this.closeWaitTimer) clearInterval(this.closeWaitTimer);
    const ch = this.channel;
    this.channel = null;
    if (ch) ch.removeConsumer(this);
    this.decoder.end();
    this.held = null;
    this.ctx.closed(this);
  }

  private run(items: DecodedItem[], from: number): void {
    for (let i = from; i < items.length; i++) {
      const r = this.handle(items[i]);
      if (r === GO) continue;
      if (r === WAIT) {
        this.held = items;
        this.heldAt = i + 1;
        this.setWaiting(true);
      }
      return;
    }
  }

  /** Continues with the commands that arrived behind one that went async. */
  private resume(): void {
    if (this.closed) return;
    const items = this.held;
    this.held = null;
    this.setWaiting(false);
    if (items) this.run(items, this.heldAt);
  }

  // ---- dispatch: nsqd's checks in nsqd's order (see wire/nsq-v2.ts), then one handler per command ----

  private handle(item: DecodedItem): number {
    if (this.closed) return STOP;
    const name = item.type === 'error' ? item.command : item.type;
    if (name !== '') {
      if (this.ctx.opts.tlsRequired && this.tlsInfo === null && name !== 'IDENTIFY') return this.fail(V2Errors.tlsRequired(name));
      const st = checkState(name, this.state);
      if (st === 'ignore') return GO;
      if (st !== null) return this.fail(st);
      if (name === 'SUB' && this.settings.heartbeatIntervalMs <= 0) return this.fail(V2Errors.subHeartbeatsDisabled());
    }
    switch (item.type) {
      case 'error':
        return this.fail(item);
      case 'FIN':
        return this.settle(item.id, this.channel!.finish(item.id, this.id), 'FIN');
      case 'RDY':
        return this.ready(item.count);
      case 'PUB':
      case 'MPUB':
      case 'DPUB':
        return this.publish(item);
      case 'REQ': {
        const delay = clampReqTimeout(item.timeoutMs, this.ctx.opts.maxReqTimeoutMs);
        return this.settle(item.id, this.channel!.requeue(item.id, this.id, delay), 'REQ');
      }
      case 'TOUCH':
        return this.settle(item.id, this.channel!.touch(item.id, this.id, undefined, this.msgTimeoutMs), 'TOUCH');
      case 'NOP':
        return GO;
      case 'SUB':
        return this.subscribe(item);
      case 'CLS':
        return this.startClose();
      case 'IDENTIFY':
        return this.identify(item.body);
      case 'AUTH':
        return this.authenticate(item.body);
    }
  }

  private respond(data: string): number {
    this.out.response(data);
    this.flushSoon();
    return GO;
  }

  /** Sends the error frame; a fatal one then ends the connection, as nsqd's IOLoop does. */
  private fail(err: ProtocolError): number {
    if (this.closed) return STOP;
    this.out.error(errorData(err.code, err.text));
    if (!err.fatal) {
      this.flushSoon();
      return GO;
    }
    this.ctx.logger.info('client error', { client: this.remoteAddress, code: err.code, error: err.text });
    this.shutdown(true);
    return STOP;
  }

  private identify(body: Buffer): number {
    const data = parseIdentify(body);
    if ('type' in data) return this.fail(data);
    const next = applyIdentify(this.settings, data, this.ctx.opts);
    if ('type' in next) return this.fail(next);
    this.settings = next;
    this.msgTimeoutMs = next.msgTimeoutMs;
    this.out.setLimit(next.outputBufferSize);
    this.configureTimers(next.heartbeatIntervalMs, next.outputBufferTimeoutMs);
    if (!data.feature_negotiation) return this.respond(OK);
    const features = this.ctx.features;
    const n = negotiate(data, features);
    if ('type' in n) return this.fail(n);
    this.out.response(negotiationResponse(this.settings, n, features));
    if (!n.tls && !n.snappy && !n.deflate) {
      this.flushSoon();
      return GO;
    }
    this.out.flush(); // the answer goes out before the transport changes
    // Bytes that arrived behind IDENTIFY were meant for the new transport; nsqd drops them too.
    this.decoder = this.newDecoder();
    this.upgrade(this.ctx.upgrades, n).then(
      () => {
        this.held = null;
        this.resume();
      },
      (err: unknown) => this.fail(protocolError('E_IDENTIFY_FAILED', 'IDENTIFY failed ' + errorText(err), true, 'IDENTIFY')),
    );
    return WAIT;
  }

  private authenticate(body: Buffer): number {
    const r = this.auth.login(body.toString('utf8'));
    if (!(r instanceof Promise)) return this.fail(r);
    void r.then((answer) => {
      if (this.closed) return;
      if (typeof answer !== 'string') return void this.fail(answer);
      this.respond(answer);
      this.resume();
    });
    return WAIT;
  }

  /** nsqd's CheckAuth; when an expired grant had to be asked for again, `item` runs once it is back. */
  private checkAuth(item: DecodedItem, command: string, topic: string, channel: string): number {
    const r = this.auth.check(command, topic, channel);
    if (r === null) return GO;
    if (!(r instanceof Promise)) return this.fail(r);
    void r.then((err) => {
      if (this.closed) return;
      if (err) this.fail(err);
      else if (this.handle(item) === GO) this.resume();
    });
    return WAIT;
  }

  private subscribe(item: Extract<DecodedItem, { type: 'SUB' }>): number {
    const { topic, channel } = item;
    const allowed = this.checkAuth(item, 'SUB', topic, channel);
    if (allowed !== GO) return allowed;
    const ch = this.ctx.engine.channel(topic, channel);
    const max = this.ctx.opts.maxChannelConsumers;
    if (max > 0 && ch.clientCount >= max) return this.fail(V2Errors.subFailed(`consumers for ${topic}:${channel} exceeds limit of ${max}`));
    this.state = 'subscribed';
    this.channel = ch;
    this.respond(OK); // before any message: RDY is still 0, so addConsumer delivers nothing
    ch.addConsumer(this);
    return GO;
  }

  private ready(count: number): number {
    const err = validateRdy(count, this.ctx.opts.maxRdyCount);
    if (err) return this.fail(err);
    this.rdy = count;
    if (this.capacity() > 0) this.channel!.pump();
    else if (this.out.buffered > 0) this.flushSoon();
    return GO;
  }

  private settle(id: string, r: SettleResult, command: 'FIN' | 'REQ' | 'TOUCH'): number {
    if (r !== 'ok') {
      const text = SETTLE_TEXT[r];
      return this.fail(command === 'FIN' ? V2Errors.finFailed(id, text) : command === 'REQ' ? V2Errors.reqFailed(id, text) : V2Errors.touchFailed(id, text));
    }
    if (command === 'FIN') this.finishCount++;
    else if (command === 'REQ') this.requeueCount++;
    if (this.state === 'closing' && this.inFlightCount === 0) this.shutdown(true);
    return GO;
  }

  private publish(item: Extract<DecodedItem, { type: 'PUB' | 'MPUB' | 'DPUB' }>): number {
    const command = item.type;
    const allowed = this.checkAuth(item, command, item.topic, '');
    if (allowed !== GO) return allowed;
    const engine = this.ctx.engine;
    let count = 1;
    try {
      if (command === 'PUB') engine.publish(item.topic, item.body);
      else if (command === 'DPUB') engine.publish(item.topic, item.body, item.deferMs);
      else {
        engine.publishMany(item.topic, item.bodies);
        count = item.bodies.length;
      }
    } catch (err) {
      this.ctx.logger.error('publish failed', { client: this.remoteAddress, topic: item.topic, error: errorText(err) });
      return this.fail(V2Errors.putFailed(command, errorText(err)));
    }
    this.pubCounts.set(item.topic, (this.pubCounts.get(item.topic) ?? 0) + count);
    return this.respond(OK);
  }

  /** CLS: no more messages (RDY 0), CLOSE_WAIT, and the connection ends once nothing is in flight. */
  private startClose(): number {
    this.state = 'closing';
    this.rdy = 0;
    this.respond(CLOSE_WAIT);
    if (this.inFlightCount === 0) {
      this.shutdown(true);
      return STOP;
    }
    // in-flight messages may also leave by timing out, which the channel does not report
    this.closeWaitTimer = setInterval(() => {
      if (this.inFlightCount === 0) this.shutdown(true);
    }, CLOSE_WAIT_POLL_MS);
    return GO;
  }

  private newDecoder(): CommandDecoder {
    const o = this.ctx.opts;
    return new CommandDecoder({ maxMsgSize: o.maxMsgSize, maxBodySize: o.maxBodySize, maxReqTimeoutMs: o.maxReqTimeoutMs });
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
