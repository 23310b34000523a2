// The admin UI in a real browser (Debian's chromium via playwright-core) against a real cluster:
// a lookup, two shards and a gateway with API keys. The page asks for the key, shows a published
// topic with its depth, follows new publishes live (SSE, no reload), creates a channel and pauses
// it through confirm dialogs, and the shards report it paused; an SSE stream opened from this test
// shows on its channel's page as one HTTP consumer of its gateway. Screenshot: tests/artifacts/admin.png.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, BrowserContext } from 'playwright-core';
import { EventSource } from 'eventsource';
import { GatewayProcess, startGateway } from '../helpers/gateway';
import { Running, startProgram, tempDir, waitFor } from '../helpers/process';
import { call, ShardProcess, startShard } from '../helpers/shard';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(__dirname, '..', 'artifacts');
const ADMIN_KEY = 'browser-admin-key-0123456789';
/** The page's document, typed for the few calls made from page functions (tsc has no DOM lib here). */
type Doc = { document: { querySelector(s: string): { textContent: string | null } | null } };
const PUB_KEY = 'browser-pub-key-0123456789';
const READ_KEY = 'browser-read-key-0123456789';

let lookup: Running;
const shards: ShardProcess[] = [];
let gw: GatewayProcess;
let context: BrowserContext | undefined;
const profile = tempDir('sluice-chromium-admin-');

beforeAll(async () => {
  // never a silent skip: without the browser this test fails and says what to install
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does)`);
  const sha = (k: string) => createHash('sha256').update(k).digest('hex');
  const keys = path.join(profile.path, 'keys.json');
  writeFileSync(keys, JSON.stringify({ keys: [{ name: 'ops', sha256: sha(ADMIN_KEY), scopes: ['admin'] }, { name: 'ci', sha256: sha(PUB_KEY), scopes: ['publish:*'] }, { name: 'reader', sha256: sha(READ_KEY), scopes: ['consume:ui-*/*'] }] }));
  lookup = await startProgram(['lookup', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0', '--broadcast-address', '127.0.0.1']);
  shards.push(...(await Promise.all([1, 2].map((i) => startShard(['--broadcast-address', '127.0.0.1', '--node-id', String(i), '--lookupd-tcp-address', lookup.addresses.tcp])))));
  gw = await startGateway(['--lookupd-http-address', lookup.addresses.http, '--lookupd-poll-interval', '200ms', '--auth-file', keys, '--receipt-secret', 'browser-receipt-secret-0123456789', '--consumer-report-interval', '200ms', '--gateway-id', 'ui-gw']);
  await waitFor(async () => (await gw.call('/readyz')).json().shards === 2, 10_000, 'gateway to see both shards');
  context = await chromium.launchPersistentContext(path.join(profile.path, 'chromium'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 900, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 60_000);

afterAll(async () => {
  await context?.close();
  await gw?.stop();
  await Promise.all(shards.map((s) => s.stop()));
  await lookup?.stop();
  profile.remove();
});

async function publish(topic: string, n: number): Promise<void> {
  const r = await gw.call(`/v1/topics/${topic}/batch`, 'POST', JSON.stringify(Array.from({ length: n }, (_, i) => ({ body: { i } }))), { authorization: `Bearer ${PUB_KEY}`, 'content-type': 'application/json' });
  expect(r.status).toBe(200);
}

async function pausedOnShards(topic: string, channel: string): Promise<boolean[]> {
  const out: boolean[] = [];
  for (const s of shards) {
    const st = (await call(s.url(`/stats?format=json&topic=${topic}`))).json();
    const c = st.topics[0]?.channels.find((x: { channel_name: string }) => x.channel_name === channel);
    if (c) out.push(c.paused);
  }
  return out;
}

describe('the admin UI in chromium', () => {
  it('shows a published topic with its depth live, creates and pauses a channel through confirm dialogs', async () => {
    const topic = 'ui-orders';
    await publish(topic, 5);
    const page = await context!.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' && !/401|403/.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.accept();
    });

    await page.goto(`http://${gw.http}/admin/`);
    // no key yet: the API answers 401 and the page asks for one
    await page.locator('#key-input').waitFor({ state: 'visible', timeout: 10_000 });
    await page.fill('#key-input', ADMIN_KEY);
    await page.click('#key-form button[type=submit]');
    const depth = page.locator(`tr[data-topic="${topic}"] td[data-field="depth"]`);
    await expect(depth.textContent({ timeout: 10_000 })).resolves.toBe('5');
    await page.locator('#live.on').waitFor({ timeout: 10_000 });
    // the 401 from before the key was given is not shown once the cluster reads fine
    await page.waitForFunction(() => !(globalThis as unknown as Doc).document.querySelector('#flash')?.textContent?.includes('cannot read'), undefined, { timeout: 5_000 });

    // a publish while the page is open shows up without a reload (the SSE snapshot)
    await publish(topic, 2);
    await page.waitForFunction((t) => (globalThis as unknown as Doc).document.querySelector(`tr[data-topic="${t}"] td[data-field="depth"]`)?.textContent === '7', topic, { timeout: 10_000 });

    // the topic page: create a channel on every shard of the topic (confirm accepted)
    await page.click(`tr[data-topic="${topic}"] a`);
    await page.fill('input[aria-label="new channel name"]', 'billing');
    await page.click('form.inline button[type=submit]');
    await page.locator('tr[data-channel="billing"] td[data-field="depth"]').waitFor({ timeout: 10_000 });
    // the topic's buffered messages moved into its first channel
    await page.waitForFunction(() => (globalThis as unknown as Doc).document.querySelector('tr[data-channel="billing"] td[data-field="depth"]')?.textContent === '7', undefined, { timeout: 10_000 });

    // the channel page: pause (confirm accepted), and the shards say so
    await page.click('tr[data-channel="billing"] a');
    await page.locator('button[data-action="pause"]').click({ timeout: 10_000 });
    const paused = await waitFor(async () => {
      const p = await pausedOnShards(topic, 'billing');
      return p.length > 0 && p.every(Boolean) ? p : null;
    }, 10_000, 'the shards to report the channel paused');
    expect(paused.length).toBeGreaterThan(0);
    await page.locator('button[data-action="unpause"]').waitFor({ timeout: 10_000 });
    expect(await page.locator('#flash').textContent()).toContain('channel.pause');
    expect(dialogs).toEqual([expect.stringContaining('Create channel billing'), expect.stringContaining('Pause channel billing')]);

    const rec = gw.logs.find((l) => l.audit === true && l.action === 'channel.pause');
    expect(rec).toMatchObject({ who: 'ops', result: 'ok', target: { topic, channel: 'billing' } });

    // the shards page reads each shard's /info and /stats
    await page.goto(`http://${gw.http}/admin/#/shards`);
    await page.locator(`tr[data-shard="${shards[0].http}"] td[data-field="health"]`).waitFor({ timeout: 10_000 });
    expect(await page.locator(`tr[data-shard="${shards[0].http}"] td[data-field="health"]`).textContent()).toBe('OK');

    // back to the topic page for the screenshot: charts, channels, shards
    await page.goto(`http://${gw.http}/admin/#/topic/${topic}`);
    await page.locator('tr[data-channel="billing"]').waitFor({ timeout: 10_000 });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'admin.png'), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });
  it('stays usable on a phone: no sideways scrolling, actions within reach', async () => {
    const topic = 'ui-phone';
    await publish(topic, 3);
    const page = await context!.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    const fits = async (): Promise<void> => {
      const [scroll, inner] = (await page.evaluate('[document.documentElement.scrollWidth, window.innerWidth]')) as [number, number];
      expect(scroll).toBeLessThanOrEqual(inner);
    };
    await page.goto(`http://${gw.http}/admin/`);
    await page.locator('#key-input').waitFor({ state: 'visible', timeout: 10_000 });
    await page.fill('#key-input', ADMIN_KEY);
    await page.click('#key-form button[type=submit]');
    await page.locator(`tr[data-topic="${topic}"] td[data-field="depth"]`).waitFor({ timeout: 10_000 });
    await fits();

    await page.click(`tr[data-topic="${topic}"] a`);
    await page.fill('input[aria-label="new channel name"]', 'mobile');
    page.once('dialog', (d) => void d.accept());
    await page.click('form.inline button[type=submit]');
    await page.locator('tr[data-channel="mobile"]').waitFor({ timeout: 10_000 });
    await fits();

    await page.click('tr[data-channel="mobile"] a');
    const pause = page.locator('button[data-action="pause"]');
    await pause.waitFor({ timeout: 10_000 });
    await fits();
    const box = await pause.boundingBox();
    expect(box).not.toBeNull();
    expect(box!.x).toBeGreaterThanOrEqual(0);
    expect(box!.x + box!.width).toBeLessThanOrEqual(390);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'admin-phone.png'), fullPage: true });
    await page.close();
  });

  it('shows an open SSE stream as one HTTP consumer of its gateway on the channel page, and in the consumers counts', async () => {
    const topic = 'ui-live';
    const es = new EventSource(`http://${gw.http}/v1/topics/${topic}/channels/tabs/stream?token=${READ_KEY}`);
    try {
      await new Promise<void>((resolve, reject) => {
        es.onopen = () => resolve();
        es.onerror = (e) => reject(new Error(`stream failed: ${String(e.message)}`));
      });
      const page = await context!.newPage();
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(String(e)));
      await page.goto(`http://${gw.http}/admin/#/topic/${topic}/tabs`);
      await page.locator('#key-input').waitFor({ state: 'visible', timeout: 10_000 });
      await page.fill('#key-input', ADMIN_KEY);
      await page.click('#key-form button[type=submit]');
      const row = page.locator('#http-consumers tr[data-gateway="ui-gw"]');
      await row.waitFor({ timeout: 15_000 });
      expect(await page.locator('#http-consumers tbody tr').count()).toBe(1);
      expect(await row.locator('td[data-field="streams"]').textContent()).toBe('1');
      expect(await row.locator('td[data-field="long_polls"]').textContent()).toBe('0');
      expect(await row.locator('td[data-field="address"]').textContent()).toBe(gw.http);
      expect(await row.locator('td[data-field="shards"]').textContent()).toBe('2');
      // the channel's summary row counts it as an HTTP consumer: TCP / HTTP
      expect(await page.locator('tr[data-channel="tabs"] td[data-field="consumers"]').textContent()).toBe('0 / 1');
      expect(await page.locator('th', { hasText: 'consumers (TCP / HTTP)' }).count()).toBeGreaterThan(0);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'admin-http-consumers.png'), fullPage: true });
      // the topic page's channel list too
      await page.goto(`http://${gw.http}/admin/#/topic/${topic}`);
      await page.waitForFunction(() => (globalThis as unknown as Doc).document.querySelector('tr[data-channel="tabs"] td[data-field="consumers"]')?.textContent === '0 / 1', undefined, { timeout: 10_000 });

      // closed: the gateway's next report clears it, and the live page follows
      es.close();
      await page.goto(`http://${gw.http}/admin/#/topic/${topic}/tabs`);
      await page.waitForFunction(() => (globalThis as unknown as Doc).document.querySelector('#http-consumers')?.textContent?.includes('no HTTP consumers') === true, undefined, { timeout: 15_000 });
      expect(await page.locator('tr[data-channel="tabs"] td[data-field="consumers"]').textContent()).toBe('0 / 0');
      expect(problems).toEqual([]);
      await page.close();
    } finally {
      es.close();
    }
  });
});
