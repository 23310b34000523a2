// A raw NSQ protocol V2 client over node:net for tests: write exact bytes, read frames one by
// one (with a deadline), and see when the server closes. It checks nothing itself.

import net from 'node:net';

export interface Frame {
  type: 'response' | 'error' | 'message';
  data: Buffer;
  /** The data as text (responses and errors). */
  text: string;
  /** For message frames. */
  id: string;
  attempts: number;
  timestamp: bigint;
  body: Buffer;
}

const TYPES = ['response', 'error', 'message'] as const;

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** A command line, plus a size-prefixed body if given. */
export function cmd(line: string, body?: Buffer | string): Buffer {
  const head = Buffer.from(line + '\n', 'latin1');
  if (body === undefined) return head;
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  return Buffer.concat([head, u32(b.length), b]);
}

export function mpubBody(bodies: (Buffer | string)[]): Buffer {
  const parts: Buffer[] = [u32(bodies.length)];
  for (const x of bodies) {
    const b = typeof x === 'string' ? Buffer.from(x) : x;
    parts.push(u32(b.length), b);
  }
  return Buffer.concat(parts);
}

export class RawClient {
  readonly frames: Frame[] = [];
  heartbeats = 0;
  isClosed = false;
  readonly closed: Promise<void>;
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', this.onChunk);
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.wake?.();
        resolve();
      }),
    );
  }

  /** Connects to "host:port" and sends the magic (unless `magic` is false or another string). */
  static async connect(address: string, magic: string | false = '  V2'): Promise<RawClient> {
    const i = address.lastIndexOf(':');
    const socket = net.connect({ host: address.slice(0, i), port: Number(address.slice(i + 1)) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new RawClient(socket);
    if (magic !== false) socket.write(magic);
    return c;
  }

  /** A client over an already connected socket (a TLS socket after an upgrade, say). */
  static over(socket: net.Socket): RawClient {
    return new RawClient(socket);
  }

  /** Stops reading this socket (before wrapping it in TLS); frames already read stay. */
  detach(): void {
    this.socket.off('data', this.onChunk);
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  private readonly onChunk = (d: Buffer): void => this.onData(d);

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 8) {
      const size = this.buf.readUInt32BE(0);
      if (this.buf.length < 4 + size) break;
      const data = this.buf.subarray(8, 4 + size);
      const type = TYPES[this.buf.readUInt32BE(4)];
      this.buf = this.buf.subarray(4 + size);
      const f: Frame = { type, data, text: data.toString(), id: '', attempts: 0, timestamp: 0n, body: Buffer.alloc(0) };
      if (type === 'message') {
        f.timestamp = data.readBigUInt64BE(0);
        f.attempts = data.readUInt16BE(8);
        f.id = data.toString('latin1', 10, 26);
        f.body = data.subarray(26);
      }
      if (type === 'response' && f.text === '_heartbeat_') this.heartbeats++;
      this.frames.push(f);
    }
    this.wake?.();
  }

  /** The next frame (heartbeats skipped unless asked for); rejects after `timeoutMs` or on close. */
  async next(timeoutMs = 5000, heartbeats = false): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.frames.length > 0) {
        const f = this.frames.shift()!;
        if (heartbeats || f.type !== 'response' || f.text !== '_heartbeat_') return f;
      }
      if (this.isClosed) throw new Error('connection closed while waiting for a frame');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          this.wake = null;
          resolve();
        };
      });
    }
  }

  async response(timeoutMs?: number): Promise<string> {
    const f = await this.next(timeoutMs);
    if (f.type !== 'response') throw new Error(`expected a response, got ${f.type} ${f.text}`);
    return f.text;
  }

  async message(timeoutMs?: number): Promise<Frame> {
    const f = await this.next(timeoutMs);
    if (f.type !== 'message') throw new Error(`expected a message, got ${f.type} ${f.text}`);
    return f;
  }

  /** Sends IDENTIFY with `body` as JSON and returns the answer frame. */
  async identify(body: Record<string, unknown>): Promise<Frame> {
    this.write(cmd('IDENTIFY', JSON.stringify(body)));
    return this.next();
  }

  /** Resolves when the server has closed the connection; rejects after `timeoutMs`. */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      this.closed,
      new Promise((_, reject) => (t = setTimeout(() => reject(new Error(`still open after ${timeoutMs} ms`)), timeoutMs))),
    ]);
    clearTimeout(t);
  }

  close(): void {
    this.socket.destroy();
  }
}
