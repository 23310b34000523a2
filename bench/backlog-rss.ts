// Memory stays bounded while a large backlog sits on disk: publishes 1M messages to a shard with
// --mem-queue-size 1000 and samples the shard's RSS (from /stats) as the backlog grows.
// Run: npm run build && node dist/bench/backlog-rss.js [messages]

import { request } from 'undici';
import { startShard } from '../tests/helpers/shard';

async function rssOf(url: string): Promise<number> {
  const res = await request(`${url}/stats?format=json&include_clients=false`);
  const doc = (await res.body.json()) as { memory: { rss_bytes: number } };
  return doc.memory.rss_bytes;
}

export async function main(total = Number(process.argv[2] ?? 1_000_000)): Promise<void> {
  const shard = await startShard(['--mem-queue-size', '1000']);
  const base = `http://${shard.http}`;
  try {
    await request(`${base}/channel/create?topic=backlog&channel=slow`, { method: 'POST' }).catch(() => undefined);
    await (await request(`${base}/topic/create?topic=backlog`, { method: 'POST' })).body.dump();
    await (await request(`${base}/channel/create?topic=backlog&channel=slow`, { method: 'POST' })).body.dump();
    const batch = 5000;
    const line = 'x'.repeat(99);
    const body = Array.from({ length: batch }, () => line).join('\n');
    const samples: { messages: number; rssMiB: number }[] = [];
    const t0 = Date.now();
    for (let sent = 0; sent < total; sent += batch) {
      const res = await request(`${base}/mpub?topic=backlog`, { method: 'POST', body });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`mpub answered ${res.statusCode}`);
      if ((sent + batch) % (total / 10) === 0) samples.push({ messages: sent + batch, rssMiB: Math.round((await rssOf(base)) / 1048576) });
    }
    const secs = (Date.now() - t0) / 1000;
    const stats = await (await request(`${base}/stats?format=json&topic=backlog`)).body.json() as { topics: { channels: { depth: number; backend_depth: number }[] }[] };
    const ch = stats.topics[0].channels[0];
    console.log(`published ${total} x 100 B in ${secs.toFixed(1)} s (${Math.round(total / secs)} msg/s via /mpub ${batch}/request)`);
    console.log(`channel depth ${ch.depth}, on disk ${ch.backend_depth}`);
    console.log('messages  rss MiB');
    for (const s of samples) console.log(`${String(s.messages).padStart(8)}  ${s.rssMiB}`);
  } finally {
    await shard.stop();
  }
}

if (require.main === module) main().catch((err) => {
  console.error(err);
  process.exit(1);
});
