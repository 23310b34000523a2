// A bare-bones NSQ TCP client for the benchmarks: connect, magic, IDENTIFY, and a frame reader
// that hands each frame to a callback without copying. Kept minimal so the client costs little
// next to the server it measures (go-nsq's bench_writer/bench_reader are the models).

import net from 'node:net';

export const FRAME_RESPONSE = 0;
export const FRAME_ERROR = 1;
export const FRAME_MESSAGE = 2;

export type FrameHandler = (type: number, data: Buffer) => void;

/** Reassembles [4B size][4B type][data] frames from socket chunks. */
export class FrameReader {
  private carry: Buffer | null = null;

  constructor(private readonly onFrame: FrameHandler) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.carry) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    let off = 0;
    while (buf.length - off >= 8) {
      const size = buf.readUInt32BE(off);
      if (buf.length - off - 4 < size) break;
      this.onFrame(buf.readUInt32BE(off + 4), buf.subarray(off + 8, off + 4 + size));
      off += 4 + size;
    }
    if (off < buf.length) this.carry = buf.subarray(off);
  }
}

export function parseAddress(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  return { host: text.slice(0, i) || '127.0.0.1', port: Number(text.slice(i + 1)) };
}

/** Connects, sends the magic and a feature-negotiating IDENTIFY, resolves after its answer. */
export async function connect(address: string, identify: Record<string, unknown> = {}): Promise<net.Socket> {
  const { host, port } = parseAddress(address);
  const socket = net.connect({ host, port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const body = Buffer.from(JSON.stringify({ feature_negotiation: true, client_id: 'bench', user_agent: 'sluice-bench', ...identify }));
  const size = Buffer.alloc(4);
  size.writeUInt32BE(body.length);
  socket.write(Buffer.concat([Buffer.from('  V2IDENTIFY\n'), size, body]));
  await new Promise<void>((resolve, reject) => {
    const r = new FrameReader((type, data) => {
      socket.off('data', onData);
      if (type === FRAME_RESPONSE) resolve();
      else reject(new Error(data.toString()));
    });
    const onData = (d: Buffer): void => r.push(d);
    socket.on('data', onData);
  });
  return socket;
}

/** A command line followed by a size-prefixed body. */
export function withBody(line: string, body: Buffer): Buffer {
  const head = Buffer.from(line);
  const out = Buffer.allocUnsafe(head.length + 4 + body.length);
  head.copy(out, 0);
  out.writeUInt32BE(body.length, head.length);
  body.copy(out, head.length + 4);
  return out;
}

export function mpubBody(messages: Buffer[]): Buffer {
  let len = 4;
  for (const m of messages) len += 4 + m.length;
  const out = Buffer.allocUnsafe(len);
  out.writeUInt32BE(messages.length, 0);
  let off = 4;
  for (const m of messages) {
    out.writeUInt32BE(m.length, off);
    m.copy(out, off + 4);
    off += 4 + m.length;
  }
  return out;
}

export function flagValue(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

/** The last line every bench script prints, for bench/run.ts to collect. */
export function report(result: Record<string, unknown>): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}
