// The gateway's per-message work on the consume path, apart from the network: decoding a shard's
// pull-many answer (JSON + base64, or the binary lease batch), signing a receipt, rendering a
// message line, and verifying a receipt on ack. End-to-end rates on a shared 2-core machine are
// too noisy to show differences of a few hundred ns; this measures them in isolation.
//
// Usage (after `npm run build`): node dist/bench/delivery-path.js [--messages 1000] [--rounds 5]
// It only uses the gateway's modules, so the compiled file also runs against an older build
// (copy it into that build's dist/bench/); parts the older build lacks are skipped.

import { ReceiptSigner } from '../gateway/receipts';
import { messageJson } from '../gateway/render';

function flag(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : Number(process.argv[i + 1]);
}

interface Codec {
  encodeLeaseBatch(pulls: unknown[]): Buffer;
  decodeLeaseBatch(buf: Buffer): { messages: { id: string; token: string; body: Buffer }[] }[];
}
let codec: Codec | null = null;
try {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  codec = require('../wire/lease-batch') as Codec;
} catch {
  codec = null;
}

const n = flag('messages', 1000);
const rounds = flag('rounds', 5);
const signer = new ReceiptSigner(['bench-receipt-secret-0123456789abcdef']);
const shard = '127.0.0.1:4151';
const topic = 'bench';
const channel = 'sse';
// As in bench/gateway-consume.ts: 100-byte JSON bodies, and the same cut off (not JSON).
const bodies = Array.from({ length: n }, (_, i) => Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(80) }).slice(0, 100)));
const cut = bodies.map((b) => b.subarray(0, 60));
const msgs = bodies.map((body, i) => ({ id: (0x1d81fea7 * 4096 + i).toString(16).padStart(16, '0').slice(-16), token: 'e08127f6' + (100000 + i).toString(36), attempts: 1, timestamp: 1.795e18 + i, body }));
const json = JSON.stringify({ results: [{ topic, channel, messages: msgs.map((m) => ({ id: m.id, token: m.token, attempts: m.attempts, timestamp: m.timestamp, lease_ms: 60000, body: m.body.toString('base64') })) }] });
const frame = codec?.encodeLeaseBatch([{ topic, channel, leaseMs: 60000, messages: msgs }]);
const receipts = msgs.map((m) => signer.sign({ shard, topic, channel, id: m.id, token: m.token }));

const cases: Record<string, () => void> = {
  'decode JSON + base64 answer': () => {
    const doc = JSON.parse(json) as { results: { messages: { id: string; token: string; body: string }[] }[] };
    for (const m of doc.results[0].messages) Buffer.from(m.body, 'base64');
  },
  'sign receipt': () => {
    for (const m of msgs) signer.sign({ shard, topic, channel, id: m.id, token: m.token });
  },
  'render line (JSON body)': () => {
    for (const m of msgs) messageJson(m, 'R', 60000, 'json');
  },
  'render line (cut-off body)': () => {
    for (let i = 0; i < n; i++) messageJson({ ...msgs[i], body: cut[i] }, 'R', 60000, 'json');
  },
  'verify receipt': () => {
    for (const r of receipts) signer.verify(r);
  },
};
if (codec && frame) {
  const c = codec;
  cases['decode binary lease batch'] = () => void c.decodeLeaseBatch(Buffer.from(frame));
}

const results: Record<string, number[]> = {};
for (let r = 0; r < rounds; r++) {
  for (const [name, fn] of Object.entries(cases)) {
    for (let w = 0; w < 20; w++) fn();
    const reps = 200;
    const t = performance.now();
    for (let k = 0; k < reps; k++) fn();
    (results[name] ??= []).push(((performance.now() - t) * 1e6) / (reps * n));
  }
}
for (const [name, xs] of Object.entries(results)) {
  xs.sort((a, b) => a - b);
  process.stdout.write(`${name.padEnd(30)} ${xs[Math.floor(xs.length / 2)].toFixed(0).padStart(6)} ns/message (median of ${rounds}; min ${xs[0].toFixed(0)})\n`);
}
