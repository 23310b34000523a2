// Like nsq's bench_writer: `--connections` connections (default 2, one per core here), each
// publishing MPUB batches of `--batch-size` messages of `--size` bytes (PUB when the batch is 1)
// and waiting for OK before the next, for `--runfor` seconds. Prints msg/s. Needs a running shard:
//   node dist/bench/tcp-writer.js --tcp 127.0.0.1:4150 [--topic sub_bench] [--runfor 10]

import { connect, flagValue, FRAME_RESPONSE, FrameReader, mpubBody, report, withBody } from './nsq-client';

export async function runWriter(o: { tcp: string; topic: string; runforS: number; size: number; batch: number; connections: number }): Promise<{ messages: number; seconds: number; rate: number }> {
  const body = Buffer.alloc(o.size, 0x61);
  const frame = o.batch === 1 ? withBody(`PUB ${o.topic}\n`, body) : withBody(`MPUB ${o.topic}\n`, mpubBody(new Array<Buffer>(o.batch).fill(body)));
  const sockets = await Promise.all(Array.from({ length: o.connections }, () => connect(o.tcp)));
  let batches = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(o.runforS * 1e9));
  await Promise.all(
    sockets.map(
      (s) =>
        new Promise<void>((resolve, reject) => {
          const reader = new FrameReader((type, data) => {
            if (type !== FRAME_RESPONSE) return reject(new Error(data.toString()));
            if (data.length !== 2) return; // _heartbeat_ (a bench run is shorter than the interval)
            batches++;
            if (process.hrtime.bigint() < end) s.write(frame);
            else resolve();
          });
          s.on('data', (d: Buffer) => reader.push(d));
          s.on('error', reject);
          s.write(frame);
        }),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  for (const s of sockets) s.destroy();
  const messages = batches * o.batch;
  return { messages, seconds, rate: messages / seconds };
}

if (require.main === module) {
  const o = {
    tcp: flagValue('tcp', '127.0.0.1:4150'),
    topic: flagValue('topic', 'sub_bench'),
    runforS: Number(flagValue('runfor', '10')),
    size: Number(flagValue('size', '200')),
    batch: Number(flagValue('batch-size', '200')),
    connections: Number(flagValue('connections', '2')),
  };
  runWriter(o).then(
    (r) => {
      const how = o.batch === 1 ? `PUB ${o.size} B, one per round trip` : `MPUB ${o.batch} × ${o.size} B`;
      process.stdout.write(`PUB: ${r.messages} msgs in ${r.seconds.toFixed(2)} s = ${Math.round(r.rate)} msg/s (${o.connections} conns, ${how})\n`);
      report({ name: `TCP publish, ${how}, ${o.connections} conns${flagValue('label', '')}`, unit: 'msg/s', rate: r.rate, messages: r.messages, seconds: r.seconds });
    },
    (err: unknown) => {
      process.stderr.write(`tcp-writer failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
}
