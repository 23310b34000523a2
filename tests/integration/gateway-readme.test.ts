// README's "Try it" for the gateway, run as written against a real cluster (one lookup, two
// shards, a gateway started the way README starts it): every curl line must answer the status
// noted after its "#". Only the addresses are rewritten to this test's ephemeral ports.

import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { GatewayProcess, startGateway } from '../helpers/gateway';
import { Running, startProgram, tempDir, waitFor } from '../helpers/process';
import { ShardProcess, startShard } from '../helpers/shard';

const readme = readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## The gateway'), readme.indexOf('\n## ', readme.indexOf('## The gateway') + 5));
const tryIt = section.slice(section.indexOf('### Try it'));
const blocks = [...tryIt.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1].trim().split('\n'));
const hasCurl = spawnSync('sh', ['-c', 'command -v curl && command -v openssl']).status === 0;

let lookup: Running;
const shards: ShardProcess[] = [];
let gw: GatewayProcess;
const dir = tempDir('sluice-readme-');

beforeAll(async () => {
  // never a silent skip: the README's lines are run with the tools they name
  if (!hasCurl) throw new Error('curl and openssl are needed to run the README lines (apt-get install curl openssl; .ci/run does)');
  lookup = await startProgram(['lookup', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0']);
  for (let i = 0; i < 2; i++) shards.push(await startShard(['--broadcast-address', '127.0.0.1', '--node-id', String(i + 1), '--lookupd-tcp-address', lookup.addresses.tcp]));
  // README's first block: write the webhook config, then start the gateway with its flags and environment.
  const [writeConfig, startLine] = blocks[0];
  execFileSync('sh', ['-c', writeConfig], { cwd: dir.path });
  const m = /^((?:\w+=\S+ )*)node dist\/bin\/sluice\.js gateway (.*)$/.exec(startLine);
  if (!m) throw new Error(`unexpected gateway line in README: ${startLine}`);
  const env = Object.fromEntries(m[1].trim().split(/\s+/).filter(Boolean).map((kv) => kv.split('=') as [string, string]));
  const args = m[2].split(/\s+/).map((a) => (a === '127.0.0.1:4161' ? lookup.addresses.http : a === 'hooks.json' ? path.join(dir.path, a) : a));
  gw = await startGateway(args, env);
  await waitFor(async () => (await gw.call('/readyz')).json().shards === 2, 10_000, 'the gateway to see both shards');
});

afterAll(async () => {
  await gw?.stop();
  for (const s of shards) await s.stop();
  await lookup?.stop();
  dir.remove();
});

it('every curl line of the gateway’s "Try it" answers the status README gives', () => {
  const lines = blocks[1].filter((l) => l.includes('curl'));
  expect(lines.length).toBeGreaterThan(15);
  const results: string[] = [];
  for (const line of lines) {
    const m = /^(.*?)\s+# (\d{3})\b/.exec(line);
    if (!m) throw new Error(`no "# <status>" after: ${line}`);
    const command = m[1].replaceAll('127.0.0.1:4180', gw.http).replaceAll('127.0.0.1:4151', shards[0].http);
    const status = execFileSync('sh', ['-c', `${command} -s -o /dev/null -w '%{http_code}'`], { cwd: dir.path, encoding: 'utf8' });
    results.push(`${status} ${m[1]}`);
    expect(`${status} ${m[1]}`).toBe(`${m[2]} ${m[1]}`);
  }
});
