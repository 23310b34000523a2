// A real browser: Debian's chromium, driven by playwright-core, opens the gateway's example page,
// which subscribes with EventSource and acks what it receives with fetch. Messages published
// through the gateway (to both shards) must all be received and acked; the shards' counts are
// checked afterwards. A screenshot is kept under tests/artifacts/ (git-ignored).

import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, BrowserContext } from 'playwright-core';
import { GatewayProcess, startGateway } from '../helpers/gateway';
import { Running, startProgram, tempDir, waitFor } from '../helpers/process';
import { call, ShardProcess, startShard } from '../helpers/shard';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(__dirname, '..', 'artifacts');

let lookup: Running;
const shards: ShardProcess[] = [];
let gw: GatewayProcess;
let context: BrowserContext | undefined;
const profile = tempDir('sluice-chromium-');

beforeAll(async () => {
  // never a silent skip: without the browser this test fails and says what to install
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does)`);
  lookup = await startProgram(['lookup', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0']);
  for (let i = 0; i < 2; i++) shards.push(await startShard(['--broadcast-address', '127.0.0.1', '--node-id', String(i + 1), '--lookupd-tcp-address', lookup.addresses.tcp]));
  gw = await startGateway(['--lookupd-http-address', lookup.addresses.http, '--lookupd-poll-interval', '200ms', '--receipt-secret', 'browser-test-receipt-secret-0123']);
  await waitFor(async () => (await gw.call('/readyz')).json().shards === 2, 10_000, 'gateway to see both shards');
  context = await chromium.launchPersistentContext(profile.path, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 60_000);

afterAll(async () => {
  await context?.close();
  await gw?.stop();
  for (const s of shards) await s.stop();
  await lookup?.stop();
  profile.remove();
});

async function channelCounts(topic: string, channel: string) {
  const sum = { depth: 0, in_flight_count: 0, message_count: 0, requeue_count: 0, timeout_count: 0 };
  for (const s of shards) {
    const st = (await call(s.url(`/stats?format=json&topic=${encodeURIComponent(topic)}`))).json();
    for (const t of st.topics ?? []) for (const c of t.channels ?? []) if (c.channel_name === channel) for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += c[k] ?? 0;
  }
  return sum;
}

describe('the example page in chromium', () => {
  it('subscribes with EventSource, receives what is published to both shards, and acks all of it', async () => {
    const page = await context!.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));
    const channel = 'tab-test#ephemeral';
    await page.goto(`http://${gw.http}/example?topic=browser&channel=${encodeURIComponent(channel)}&max_in_flight=20&autostart=1`);
    await page.waitForFunction(() => (globalThis as unknown as { sluiceExample: { open: boolean } }).sluiceExample.open, undefined, { timeout: 10_000 });

    const bodies = Array.from({ length: 60 }, (_, i) => (i % 3 === 0 ? { n: i, text: '<b>not html</b>' } : i % 3 === 1 ? `plain ${i}` : `line\n${i}`));
    // Two batches: a batch without keys goes to one shard; the next one to the other.
    const used = new Set<string>();
    for (const half of [bodies.slice(0, 30), bodies.slice(30)]) {
      const r = await gw.call('/v1/topics/browser/batch', 'POST', JSON.stringify(half.map((body) => ({ body }))), { 'content-type': 'application/json' });
      expect(r.status).toBe(200);
      for (const x of r.json().results as { shard: string }[]) used.add(x.shard);
    }
    expect(used.size).toBe(2);

    await page.waitForFunction(() => (globalThis as unknown as { sluiceExample: { acked: number } }).sluiceExample.acked >= 60, undefined, { timeout: 20_000 });
    const state = await page.evaluate(() => (globalThis as unknown as { sluiceExample: { received: number; acked: number; failed: number; ids: string[] } }).sluiceExample);
    expect(state).toMatchObject({ received: 60, acked: 60, failed: 0 });
    expect(new Set(state.ids).size).toBe(60);
    expect(await page.locator('#acked').textContent()).toBe('60');
    // a body that looks like markup is shown as text
    expect(await page.locator('td.body', { hasText: '<b>not html</b>' }).count()).toBe(20);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'example-page.png'), fullPage: true });

    await waitFor(async () => (await channelCounts('browser', channel)).in_flight_count === 0, 5000, 'nothing left in flight');
    expect(await channelCounts('browser', channel)).toMatchObject({ depth: 0, in_flight_count: 0, message_count: 60, requeue_count: 0, timeout_count: 0 });
    expect(problems).toEqual([]);
    await page.close();
  });
});
