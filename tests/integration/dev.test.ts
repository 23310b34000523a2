// `sluice dev` (what `npm start` runs): the whole local cluster in one command, and the curl
// lines it prints work as printed.

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startProgram, tempDir, waitFor } from '../helpers/process';
import { call, startShard } from '../helpers/shard';

/** Pids of the live processes whose parent is `ppid` (from /proc). */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      if (new RegExp(`^PPid:\\s+${ppid}$`, 'm').test(status) && !/^State:\s+Z/m.test(status)) out.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};

describe('sluice dev', () => {
  it('starts a lookup, two shards registered with it and a gateway, and prints curl lines and an admin URL that work', async () => {
    const dir = tempDir();
    const dev = await startProgram(['dev', '--base-port', '0', '--data-path', dir.path]);
    try {
      const out = await waitFor(() => (dev.stdout().includes('Ctrl-C') ? dev.stdout() : ''), 10000, 'the printed addresses');
      expect(out).toMatch(/lookup\s+tcp 127\.0\.0\.1:\d+/);
      expect(out).toMatch(/shard2\s+tcp 127\.0\.0\.1:\d+/);
      expect(out).toMatch(/gateway\s+http http:\/\/127\.0\.0\.1:\d+/);
      const admin = /Admin UI: (http:\/\/127\.0\.0\.1:\d+\/admin\/)/.exec(out)![1];
      expect(execFileSync('curl', ['-sS', '--fail', '--max-time', '10', admin], { encoding: 'utf8' })).toContain('<title>Sluice admin</title>');
      const curls = out.split('\n').filter((l) => l.trim().startsWith('curl '));
      expect(curls.length).toBe(3);
      const run = (line: string) => execFileSync('bash', ['-c', `${line.trim()} -sS --fail --max-time 10`], { encoding: 'utf8' });
      const published = JSON.parse(run(curls[0]));
      expect(published).toMatchObject({ topic: 'demo', duplicate: false });
      const consumed = JSON.parse(run(curls[1]));
      expect(consumed.messages).toHaveLength(1);
      expect(consumed.messages[0]).toMatchObject({ id: published.id, encoding: 'text', body: 'hello', attempts: 1 });
      // the cluster view: the topic on the shard the gateway published to, with the channel the consume created
      const view = await waitFor(() => (JSON.parse(run(curls[2])).topics as { name: string; channels: { name: string }[] }[]).find((t) => t.name === 'demo'), 5000, 'the topic in the admin API');
      expect(view.channels.map((c) => c.name)).toEqual(['tryout']);
      // registration with the lookup is asynchronous; the shard holding the topic appears there too
      const lookupLine = /lookup\s+tcp \S+\s+http (http:\/\/\S+)/.exec(out)![1];
      const lookup = await waitFor(() => JSON.parse(execFileSync('curl', ['-sS', '--fail', '--max-time', '10', `${lookupLine}/lookup?topic=demo`], { encoding: 'utf8' })), 5000, 'the topic in the lookup');
      expect(lookup.producers.length).toBeGreaterThanOrEqual(1);
      expect(lookup.channels).toEqual(['tryout']);
    } finally {
      expect(await dev.stop('SIGINT')).toBe(0);
      dir.remove();
    }
  });

  it('takes its children down cleanly with it when it is killed with SIGKILL', async () => {
    const dir = tempDir();
    const dev = await startProgram(['dev', '--base-port', '0', '--data-path', dir.path]);
    const kids = childrenOf(dev.child.pid!);
    try {
      expect(kids).toHaveLength(4); // lookup, two shards, gateway
      const shard1 = /shard1\s+tcp \S+\s+http (http:\/\/\S+)/.exec(await waitFor(() => (dev.stdout().includes('Ctrl-C') ? dev.stdout() : ''), 10000, 'the printed addresses'))![1];
      expect((await call(`${shard1}/pub?topic=kept`, 'POST', 'in memory only')).text).toBe('OK');
      await dev.kill9();
      await waitFor(() => kids.every((pid) => !alive(pid)), 15000, 'the children of a SIGKILLed sluice dev to exit');
      // a clean shutdown (not a crash) saved the shard's memory queue
      const again = await startShard([], path.join(dir.path, 'shard1'));
      try {
        const stats = (await call(again.url('/stats?format=json&topic=kept'))).json() as { topics: { topic_name: string; depth: number }[] };
        expect(stats.topics.find((t) => t.topic_name === 'kept')?.depth).toBe(1);
      } finally {
        await again.stop();
      }
    } finally {
      await dev.kill9();
      for (const pid of kids.filter(alive)) process.kill(pid, 'SIGKILL');
      dir.remove();
    }
  });
});
