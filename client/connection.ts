// One NSQ TCP connection from the client side: connect, magic, IDENTIFY (feature negotiation),
// optional AUTH, then frames in and commands out. Heartbeats are answered here with NOP; a server
// silent for two heartbeat intervals is dropped. Producer and Consumer build on it.

import net from 'node:net';
import os from 'node:os';
import { parseHostPort } from '../runtime/config';
import { SLUICE_VERSION } from '../runtime/version';
import type { WireMessage } from '../wire/message';
import { encodeAuth, encodeIdentify, FrameDecoder, HEARTBEAT, MAGIC_BYTES, NOP_BYTES, type ServerFrame } from '../wire/nsq-v2-client';
import { ClientError, errorText } from './errors';

export interface ConnectionOptions {
  /** Sent in IDENTIFY; defaults to the short hostname. */
  clientId?: string;
  hostname?: string;
  userAgent?: string;
  /** ms; nsqd's default is 30 s. */
  heartbeatIntervalMs?: number;
  /** ms a message may stay in flight before the server requeues it; 0: the server's default. */
  msgTimeoutMs?: number;
  /** ms the server may hold messages to batch writes (0: the server's default, 250 ms). */
  outputBufferTimeoutMs?: number;
  /** Sent with AUTH when the server requires it. */
  authSecret?: string;
  connectTimeoutMs?: number;
  maxFrameSize?: number;
}

/** What the server told us in its IDENTIFY answer (nsqd's defaults if it answered a plain OK). */
export interface ServerSettings {
  maxRdyCount: number;
  msgTimeoutMs: number;
  maxMsgTimeoutMs: number;
  version: string;
  authRequired: boolean;
}

/** Called for everything after the handshake; heartbeats never reach it. */
export interface ConnectionHandler {
  message(msg: WireMessage): void;
  response(text: string): void;
  error(code: string, text: string, fatal: boolean): void;
  /** Once, when the socket is gone; `err` is null after a clean close. */
  closed(err: Error | null): void;
}

const DEFAULT_HEARTBEAT_MS = 30_000;
const NSQD_DEFAULTS: ServerSettings = { maxRdyCount: 2500, msgTimeoutMs: 60_000, maxMsgTimeoutMs: 900_000, version: '', authRequired: false };

export class Connection {
  private readonly decoder: FrameDecoder;
  private handler: ConnectionHandler | null = null;
  private handshake: ((f: ServerFrame | Error) => void) | null = null;
  private ended = false;
  private closeError: Error | null = null;
  settings: ServerSettings = NSQD_DEFAULTS;

  private constructor(readonly address: string, private readonly socket: net.Socket, maxFrameSize?: number) {
    this.decoder = new FrameDecoder(maxFrameSize);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => (this.closeError ??= err));
    socket.on('timeout', () => this.destroy(new ClientError('TIMEOUT', `no data from ${address} for two heartbeat intervals`)));
    socket.on('close', () => this.onClose());
  }

  /** Connects and completes the handshake; the handler receives everything after it. */
  static async open(address: string, o: ConnectionOptions, handler: ConnectionHandler): Promise<Connection> {
    const { host, port } = parseHostPort(address);
    const socket = net.connect({ host, port, noDelay: true });
    const conn = new Connection(address, socket, o.maxFrameSize);
    try {
      await conn.connected(o.connectTimeoutMs ?? 5000);
      socket.write(MAGIC_BYTES);
      const heartbeat = o.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS;
      const host = o.hostname ?? os.hostname();
      const answer = await conn.request(
        encodeIdentify({
          client_id: o.clientId ?? host.split('.')[0],
          hostname: host,
          user_agent: o.userAgent ?? `sluice-client/${SLUICE_VERSION}`,
          feature_negotiation: true,
          heartbeat_interval: heartbeat,
          ...(o.msgTimeoutMs ? { msg_timeout: o.msgTimeoutMs } : {}),
          ...(o.outputBufferTimeoutMs ? { output_buffer_timeout: o.outputBufferTimeoutMs } : {}),
        }),
        o.connectTimeoutMs ?? 5000,
      );
      conn.settings = parseSettings(answer);
      if (conn.settings.authRequired) {
        if (!o.authSecret) throw new ClientError('CONNECT_FAILED', `${address} requires AUTH and no secret was given`);
        await conn.request(encodeAuth(o.authSecret), o.connectTimeoutMs ?? 5000);
      }
      // two missed heartbeats mean the server (or the path to it) is gone
      if (heartbeat > 0) socket.setTimeout(2 * heartbeat);
    } catch (err) {
      conn.destroy();
      throw err instanceof ClientError ? err : new ClientError('CONNECT_FAILED', `${address}: ${errorText(err)}`);
    }
    conn.handler = handler;
    return conn;
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Bytes waiting in the socket's buffer (for callers that want to apply backpressure). */
  get pendingWriteBytes(): number {
    return this.socket.writableLength;
  }

  write(bytes: Buffer): void {
    if (!this.ended) this.socket.write(bytes);
  }

  /** Half-closes after everything written so far has been sent. */
  end(): void {
    if (!this.ended) this.socket.end();
  }

  destroy(err?: Error): void {
    if (err) this.closeError ??= err;
    this.socket.destroy();
  }

  private connected(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new ClientError('CONNECT_FAILED', `${this.address}: connect timed out`)), timeoutMs);
      this.socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.once('close', () => {
        clearTimeout(timer);
        reject(new ClientError('CONNECT_FAILED', `${this.address}: ${this.closeError ? errorText(this.closeError) : 'closed'}`));
      });
    });
  }

  // One command of the handshake and its answer (the handler is not attached yet).
  private request(bytes: Buffer, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.handshake = null;
        reject(new ClientError('TIMEOUT', `${this.address}: no answer to the handshake`));
      }, timeoutMs);
      this.handshake = (f) => {
        clearTimeout(timer);
        this.handshake = null;
        if (f instanceof Error) reject(f);
        else if (f.type === 'response') resolve(f.text);
        else if (f.type === 'error') reject(new ClientError('NSQ_ERROR', `${this.address}: ${f.code} ${f.text}`, f.code, f.fatal));
        else reject(new ClientError('PROTOCOL', `${this.address}: unexpected ${f.type} frame during the handshake`));
      };
      this.socket.write(bytes);
    });
  }

  private onData(chunk: Buffer): void {
    const frames = this.decoder.push(chunk);
    for (const f of frames) {
      if (f.type === 'response' && f.text === HEARTBEAT) {
        this.write(NOP_BYTES);
        continue;
      }
      if (f.type === 'invalid') {
        this.destroy(new ClientError('PROTOCOL', `${this.address}: ${f.reason}`));
        return;
      }
      if (this.handshake) this.handshake(f);
      else if (this.handler) {
        if (f.type === 'message') this.handler.message(f.message);
        else if (f.type === 'response') this.handler.response(f.text);
        else this.handler.error(f.code, f.text, f.fatal);
      }
      if (this.ended) return;
    }
  }

  private onClose(): void {
    if (this.ended) return;
    this.ended = true;
    const err = this.closeError;
    this.handshake?.(err ?? new ClientError('CONNECTION_CLOSED', `${this.address} closed the connection`));
    this.handler?.closed(err);
  }
}

/** nsqd answers a feature-negotiating IDENTIFY with JSON; anything else ("OK") means its defaults. */
function parseSettings(answer: string): ServerSettings {
  if (!answer.startsWith('{')) return NSQD_DEFAULTS;
  let raw: unknown;
  try {
    raw = JSON.parse(answer);
  } catch {
    throw new ClientError('PROTOCOL', 'IDENTIFY answer is not valid JSON');
  }
  const r = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const num = (v: unknown, def: number): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : def);
  return {
    maxRdyCount: num(r.max_rdy_count, NSQD_DEFAULTS.maxRdyCount),
    msgTimeoutMs: num(r.msg_timeout, NSQD_DEFAULTS.msgTimeoutMs),
    maxMsgTimeoutMs: num(r.max_msg_timeout, NSQD_DEFAULTS.maxMsgTimeoutMs),
    version: typeof r.version === 'string' ? r.version : '',
    authRequired: r.auth_required === true,
  };
}
