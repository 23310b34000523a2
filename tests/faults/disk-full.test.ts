// A shard whose disk fills up (a 2 MiB tmpfs): publishes get an error, never a false success;
// /ping and /stats report the problem; the process stays up; once space returns, everything that
// was acknowledged is still there and publishing works again.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { call, startShard, ShardProcess } from '../helpers/shard';
import { waitFor } from '../helpers/process';
import { DurabilityChecker, drainInto } from '../helpers/durability';
import { cmd, RawClient } from '../helpers/nsq-raw';

function tryMount(dir: string): string | null {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return String((err as { stderr?: Buffer }).stderr ?? err).trim();
  }
}

describe('disk full', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-diskfull-'));
  const cannotMount = tryMount(dir);
  afterAll(() => {
    if (cannotMount === null) execFileSync('umount', ['-l', dir]);
    rmdirSync(dir);
  });
  // never a silent skip: where a tmpfs cannot be mounted, the test fails and says why
  const maybe = (name: string, fn: () => Promise<void>, timeout?: number) =>
    it(name, async () => {
      if (cannotMount !== null) throw new Error(`cannot mount a 2 MiB tmpfs (${cannotMount}): run as root with mount permitted (CI does)`);
      await fn();
    }, timeout);

  maybe('publishes fail with 503 PUB_FAILED (never 200) while full, health says so, acknowledged data survives', async () => {
    const args = ['--mem-queue-size', '0', '--sync-every', '1', '--max-bytes-per-file', '65536'];
    let shard: ShardProcess = await startShard(args, dir);
    try {
      await call(shard.url('/topic/create?topic=full'), 'POST');
      await call(shard.url('/channel/create?topic=full&channel=c'), 'POST');
      const checker = new DurabilityChecker();
      const pad = 'x'.repeat(1000);
      let failures = 0;
      // 2 MiB holds under 2,000 of these: fill it, then keep trying (bounded)
      for (let i = 0; i < 3000 && failures < 50; i++) {
        const body = `${i}-${pad}`;
        checker.attempt(body);
        const r = await call(shard.url('/pub?topic=full'), 'POST', body);
        if (r.status === 200) {
          expect(failures).toBe(0); // once full, nothing is acknowledged until space returns
          checker.ack(body);
        } else {
          expect(r.status).toBe(503);
          expect(r.json()).toEqual({ message: 'PUB_FAILED' });
          failures++;
        }
      }
      expect(failures).toBe(50);
      expect(checker.ackedCount).toBeGreaterThan(1000);
      // the batch endpoints refuse too
      const m = await call(shard.url('/mpub?topic=full'), 'POST', `a-${pad}\nb-${pad}`);
      expect(m.status).toBe(503);
      const s = await call(shard.url('/sluice/pub?topic=full'), 'POST', `s-${pad}`);
      expect(s.status).toBe(503);
      // and so does the TCP protocol, with nsqd's E_PUB_FAILED
      const tcp = await RawClient.connect(shard.addresses.tcp);
      try {
        tcp.write(cmd('PUB full', `t-${pad}`));
        const f = await tcp.next();
        expect([f.type, f.text.split(' ')[0]]).toEqual(['error', 'E_PUB_FAILED']);
      } finally {
        tcp.socket.destroy();
      }
      // health reports it, on /ping and in /stats, and stays reported across scans
      await new Promise((r) => setTimeout(r, 300));
      const ping = await call(shard.url('/ping'));
      expect(ping.status).toBe(500);
      expect(ping.json().message).toMatch(/^NOK - .*ENOSPC/);
      expect((await call(shard.url('/stats?format=json'))).json().health).toMatch(/ENOSPC/);
      expect(shard.child.exitCode).toBeNull(); // still running
      expect(shard.logs.some((l) => l.message === 'storage write failed')).toBe(true);

      // space returns: publishing works again and health recovers
      execFileSync('mount', ['-o', 'remount,size=16m', dir]);
      await waitFor(async () => (await call(shard.url('/ping'))).status === 200, 5000, 'health to recover');
      const after = `after-${pad}`;
      checker.attempt(after);
      expect((await call(shard.url('/pub?topic=full'), 'POST', after)).status).toBe(200);
      checker.ack(after);

      // every acknowledged message is there after a restart (refused ones may have landed too)
      expect(await shard.stop()).toBe(0);
      shard = await startShard(args, dir);
      await drainInto(shard.url, 'full', 'c', checker);
      const rep = checker.report();
      expect(rep.lost).toEqual([]);
      expect(rep.unexpected).toEqual([]);
      expect(rep.duplicated).toEqual([]);
    } finally {
      await shard.stop();
    }
  });
});
