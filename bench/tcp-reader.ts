// Like nsq's bench_reader: `--connections` connections (default 2) subscribed to one channel with
// RDY `--rdy` (2500), each message finished as it arrives (FINs of one read go out in one write).
// Reads until `--count` messages (default: the channel's depth at start) or `--runfor` seconds.
//   node dist/bench/tcp-reader.js --tcp 127.0.0.1:4150 --http 127.0.0.1:4151 [--topic sub_bench --channel ch]

import { request } from 'undici';
import { connect, flagValue, FRAME_ERROR, FRAME_MESSAGE, FrameReader, report } from './nsq-client';

const FIN_LENGTH = 'FIN '.length + 16 + 1;

async function channelDepth(http: string, topic: string, channel: string): Promise<number> {
  const res = await request(`http://${http}/stats?format=json&topic=${topic}&channel=${channel}`);
  const doc = (await res.body.json()) as { topics: { channels: { depth: number; in_flight_count: number }[] }[] };
  const ch = doc.topics[0]?.channels[0];
  return ch ? ch.depth + ch.in_flight_count : 0;
}

export async function runReader(o: { tcp: string; http: string; topic: string; channel: string; runforS: number; rdy: number; connections: number; count: number }): Promise<{ messages: number; seconds: number; rate: number }> {
  const target = o.count > 0 ? o.count : await channelDepth(o.http, o.topic, o.channel);
  const sockets = await Promise.all(Array.from({ length: o.connections }, () => connect(o.tcp)));
  let received = 0;
  let start = 0n;
  let last = 0n;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, o.runforS * 1000);
    const finish = (): void => {
      clearTimeout(timer);
      resolve();
    };
    for (const s of sockets) {
      // FINs for one socket read are written together; the buffer is reused (copied by write()).
      let fins = Buffer.allocUnsafe(64 * 1024);
      let off = 0;
      const reader = new FrameReader((type, data) => {
        if (type === FRAME_ERROR) return reject(new Error(data.toString()));
        if (type !== FRAME_MESSAGE) return;
        if (received++ === 0) start = process.hrtime.bigint();
        if (off + FIN_LENGTH > fins.length) {
          s.write(fins.subarray(0, off));
          fins = Buffer.allocUnsafe(fins.length);
          off = 0;
        }
        off += fins.write('FIN ', off, 'latin1');
        off += data.copy(fins, off, 10, 26);
        fins[off++] = 10;
      });
      s.on('data', (d: Buffer) => {
        reader.push(d);
        if (off > 0) {
          s.write(fins.subarray(0, off));
          fins = Buffer.allocUnsafe(fins.length);
          off = 0;
        }
        if (received >= target) {
          last = process.hrtime.bigint();
          finish();
        }
      });
      s.on('error', reject);
      s.write(`SUB ${o.topic} ${o.channel}\nRDY ${o.rdy}\n`);
    }
  });
  if (last === 0n) last = process.hrtime.bigint();
  const seconds = start === 0n ? 0 : Number(last - start) / 1e9;
  for (const s of sockets) s.destroy();
  return { messages: received, seconds, rate: seconds > 0 ? received / seconds : 0 };
}

if (require.main === module) {
  const o = {
    tcp: flagValue('tcp', '127.0.0.1:4150'),
    http: flagValue('http', '127.0.0.1:4151'),
    topic: flagValue('topic', 'sub_bench'),
    channel: flagValue('channel', 'ch'),
    runforS: Number(flagValue('runfor', '10')),
    rdy: Number(flagValue('rdy', '2500')),
    connections: Number(flagValue('connections', '2')),
    count: Number(flagValue('count', '0')),
  };
  runReader(o).then(
    (r) => {
      process.stdout.write(`SUB: ${r.messages} msgs in ${r.seconds.toFixed(2)} s = ${Math.round(r.rate)} msg/s (${o.connections} conns, RDY ${o.rdy}, FIN each)\n`);
      report({ name: `TCP consume, RDY ${o.rdy}, FIN each, ${o.connections} conns`, unit: 'msg/s', rate: r.rate, messages: r.messages, seconds: r.seconds });
    },
    (err: unknown) => {
      process.stderr.write(`tcp-reader failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
}
