// Delivery latency at RDY 1: one connection PUBlishes a message carrying its send time (waiting
// for OK), another subscribed with RDY 1 receives it and FINs; reports p50/p99 publish→delivery.
//   node dist/bench/tcp-latency.js --tcp 127.0.0.1:4150 [--count 5000]

import { connect, flagValue, FRAME_ERROR, FRAME_MESSAGE, FRAME_RESPONSE, FrameReader, report, withBody } from './nsq-client';

export async function runLatency(o: { tcp: string; topic: string; count: number }): Promise<{ p50: number; p99: number; count: number }> {
  const pub = await connect(o.tcp);
  const sub = await connect(o.tcp);
  const samples: number[] = [];
  const body = Buffer.alloc(200, 0x61);
  await new Promise<void>((resolve, reject) => {
    let subscribed = false;
    let sent = 0;
    const send = (): void => {
      body.writeDoubleBE(performance.now(), 0);
      sent++;
      pub.write(withBody(`PUB ${o.topic}\n`, body));
    };
    const pubReader = new FrameReader((type, data) => {
      if (type !== FRAME_RESPONSE) reject(new Error(data.toString()));
    });
    pub.on('data', (d: Buffer) => pubReader.push(d));
    const subReader = new FrameReader((type, data) => {
      if (type === FRAME_ERROR) return reject(new Error(data.toString()));
      if (type === FRAME_RESPONSE && !subscribed && data.toString() === 'OK') {
        subscribed = true;
        sub.write('RDY 1\n');
        return send();
      }
      if (type !== FRAME_MESSAGE) return;
      samples.push(performance.now() - data.readDoubleBE(26));
      sub.write(`FIN ${data.toString('latin1', 10, 26)}\n`);
      if (sent < o.count) send();
      else resolve();
    });
    sub.on('data', (d: Buffer) => subReader.push(d));
    sub.write(`SUB ${o.topic} ch\n`);
  });
  pub.destroy();
  sub.destroy();
  samples.sort((a, b) => a - b);
  const at = (q: number): number => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  return { p50: at(0.5), p99: at(0.99), count: samples.length };
}

if (require.main === module) {
  const o = { tcp: flagValue('tcp', '127.0.0.1:4150'), topic: flagValue('topic', 'latency_bench'), count: Number(flagValue('count', '5000')) };
  runLatency(o).then(
    (r) => {
      process.stdout.write(`latency at RDY 1: p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms (${r.count} messages)\n`);
      report({ name: 'TCP delivery latency, RDY 1', unit: 'ms', p50: r.p50, p99: r.p99, messages: r.count });
    },
    (err: unknown) => {
      process.stderr.write(`tcp-latency failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
}
