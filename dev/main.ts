// `sluice dev`: a whole cluster on localhost for trying Sluice out — one lookup, two shards and a
// gateway (with the admin UI), each a child process of this one, data under ./data.
// Ctrl-C stops them all cleanly; starting again keeps the data.

import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { flag } from '../runtime/config';
import type { Logger } from '../runtime/logger';
import { defineProgram, Service } from '../runtime/program';

const devFlags = {
  dataPath: flag.string('data', 'directory under which each shard keeps its data'),
  host: flag.string('127.0.0.1', 'address every process listens on'),
  basePort: flag.int(4150, 'first port: shard 1 uses base and base+1, shard 2 base+2 and base+3, the lookup base+10 and base+11, the gateway base+30 (0: any free ports)', 0, 65000),
  childLogLevel: flag.string('warn', 'log level of the child processes (their logs are shown prefixed with their name)'),
};

interface Child {
  name: string;
  proc: ChildProcess;
  addresses: Record<string, string>;
}

const CLI = path.join(__dirname, '..', 'bin', 'sluice.js');

/** Starts one `sluice` subcommand and resolves with the addresses from its "listening" line. */
function startChild(name: string, args: string[], logger: Logger): Promise<Child> {
  // The IPC channel is the children's lifeline: it closes when this process dies however it dies
  // (SIGKILL included), and each child then shuts itself down cleanly (bin/sluice.ts).
  const proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
  proc.channel?.unref();
  return new Promise((resolve, reject) => {
    let pending = '';
    let started = false;
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (chunk: string) => {
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        let rec: Record<string, unknown> | undefined;
        try {
          rec = JSON.parse(line) as Record<string, unknown>;
        } catch {
          rec = undefined;
        }
        if (!started && rec?.message === 'listening') {
          started = true;
          resolve({ name, proc, addresses: rec as Record<string, string> });
        } else if (!rec || rec.message !== 'listening') process.stderr.write(`[${name}] ${line}\n`);
      }
    });
    proc.once('exit', (code, signal) => {
      if (!started) reject(new Error(`${name} exited with ${code} before it was listening`));
      else if (code !== 0) logger.warn('child exited', { child: name, code, signal });
    });
  });
}

function stopChild(c: Child): Promise<void> {
  return new Promise((resolve) => {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) return resolve();
    c.proc.once('exit', () => resolve());
    c.proc.kill('SIGTERM');
  });
}

export const program = defineProgram({
  summary: 'Runs a local cluster for development: one lookup, two shards and a gateway (admin UI at /admin/) on 127.0.0.1, data under --data-path.',
  flags: devFlags,
  async run(config, logger): Promise<Service> {
    const h = config.host;
    const at = (offset: number) => `${h}:${config.basePort === 0 ? 0 : config.basePort + offset}`;
    const children: Child[] = [];
    const stopAll = async () => {
      await Promise.all(children.reverse().map(stopChild));
    };
    try {
      const lookup = await startChild('lookup', ['lookup', '--tcp-address', at(10), '--http-address', at(11), '--broadcast-address', h, '--log-level', config.childLogLevel], logger);
      children.push(lookup);
      for (let i = 0; i < 2; i++) {
        const shard = await startChild(`shard${i + 1}`, [
          'shard',
          '--tcp-address', at(2 * i),
          '--http-address', at(2 * i + 1),
          '--broadcast-address', h,
          '--data-path', path.join(config.dataPath, `shard${i + 1}`),
          '--lookupd-tcp-address', lookup.addresses.tcp,
          '--node-id', String(i + 1),
          '--log-level', config.childLogLevel,
        ], logger);
        children.push(shard);
      }
      // Receipts of a dev cluster need not outlive it: a fresh secret each run turns consuming on.
      const gateway = await startChild('gateway', [
        'gateway',
        '--http-address', at(30),
        '--lookupd-http-address', lookup.addresses.http,
        '--lookupd-poll-interval', '1s',
        '--receipt-secret', randomBytes(24).toString('hex'),
        '--log-level', config.childLogLevel,
      ], logger);
      children.push(gateway);
    } catch (err) {
      await stopAll();
      throw err;
    }
    const [lookup, s1, s2, gw] = children;
    process.stdout.write(
      [
        'Sluice is running:',
        `  lookup   tcp ${lookup.addresses.tcp}  http http://${lookup.addresses.http}`,
        `  shard1   tcp ${s1.addresses.tcp}  http http://${s1.addresses.http}`,
        `  shard2   tcp ${s2.addresses.tcp}  http http://${s2.addresses.http}`,
        `  gateway  http http://${gw.addresses.http}`,
        '',
        `Admin UI: http://${gw.addresses.http}/admin/`,
        '',
        'Try (publish, consume, see the cluster — all through the gateway):',
        `  curl -d 'hello' 'http://${gw.addresses.http}/v1/topics/demo/messages'`,
        `  curl -X POST 'http://${gw.addresses.http}/v1/topics/demo/channels/tryout/messages?wait_ms=1000&encoding=text'`,
        `  curl 'http://${gw.addresses.http}/v1/admin/topics'`,
        '',
        'Ctrl-C stops everything; data stays under ' + path.resolve(config.dataPath),
        '',
      ].join('\n'),
    );
    logger.info('listening', { lookup: lookup.addresses.http, shard1: s1.addresses.http, shard2: s2.addresses.http, gateway: gw.addresses.http, admin: `http://${gw.addresses.http}/admin/` });
    return { close: stopAll };
  },
});
