// Shared by the tools-* integration tests: a cluster of one lookup and two shards on 127.0.0.1
// (shards broadcast 127.0.0.1, so discovery never leaves this machine), optionally with gateways
// in front (consuming on, one receipt secret for all), each utility spawned as
// `node dist/bin/sluice.js <tool> …` with its stdin, stdout, logs and exit code at hand, and small
// HTTP helpers to publish and read stats.

import { spawn, type ChildProcess } from 'node:child_process';
import { GatewayProcess, startGateway } from './gateway';
import { LookupProcess, startLookup } from './lookup';
import { CLI, tempDir, waitFor } from './process';
import { call, ShardProcess, startShard } from './shard';

export interface Cluster {
  lookup: LookupProcess;
  shards: [ShardProcess, ShardProcess];
  /** "127.0.0.1:port" of the lookup's HTTP side, as --lookupd-http-address takes it. */
  lookupHttp: string;
  /** Gateways started with addGateway(), stopped by close(). */
  gateways: GatewayProcess[];
  /** Starts a gateway in front of the cluster (extra flags appended) and waits until it sees both shards. */
  addGateway(args?: string[]): Promise<GatewayProcess>;
  close(): Promise<void>;
}

/** The receipt secret of every gateway addGateway() starts. */
export const RECEIPT_SECRET = 'tools-test-receipt-secret-0123456789';

export async function startCluster(shardArgs: string[] = []): Promise<Cluster> {
  const lookup = await startLookup(['--broadcast-address', '127.0.0.1']);
  const dirs = [tempDir(), tempDir()];
  const args = ['--lookupd-tcp-address', lookup.tcpAddress, '--broadcast-address', '127.0.0.1', '--lookup-ping-interval', '250ms', ...shardArgs];
  const shards = (await Promise.all(dirs.map((d) => startShard(args, d.path)))) as [ShardProcess, ShardProcess];
  const lookupHttp = lookup.base.replace('http://', '');
  const gateways: GatewayProcess[] = [];
  return {
    lookup,
    shards,
    lookupHttp,
    gateways,
    async addGateway(extra: string[] = []) {
      const gw = await startGateway(['--lookupd-http-address', lookupHttp, '--lookupd-poll-interval', '200ms', '--receipt-secret', RECEIPT_SECRET, ...extra]);
      gateways.push(gw);
      await waitFor(async () => (await gw.call('/readyz')).json().shards === 2, 10_000, 'the gateway to see both shards');
      return gw;
    },
    async close() {
      await Promise.all(gateways.map((g) => g.stop()));
      await Promise.all(shards.map((s) => s.stop()));
      await lookup.stop();
      for (const d of dirs) d.remove();
    },
  };
}

async function ok(url: string, method = 'POST', body?: string): Promise<void> {
  const res = await call(url, method, body);
  if (res.status !== 200) throw new Error(`${method} ${url}: ${res.status} ${res.text}`);
}

/** Creates the topic (and channel) on every shard and waits until the lookup lists them all. */
export async function prepareTopic(c: Cluster, topic: string, channel?: string): Promise<void> {
  for (const s of c.shards) {
    await ok(s.url(`/topic/create?topic=${encodeURIComponent(topic)}`));
    if (channel) await ok(s.url(`/channel/create?topic=${encodeURIComponent(topic)}&channel=${encodeURIComponent(channel)}`));
  }
  await waitFor(
    async () => ((await call(`${c.lookup.base}/lookup?topic=${encodeURIComponent(topic)}`)).json() as { producers: unknown[] }).producers.length === 2,
    5000,
    `${topic} registered by both shards`,
  );
}

/** Publishes newline-separated messages to one shard with /mpub. */
export function mpub(shard: ShardProcess, topic: string, bodies: string[]): Promise<void> {
  return ok(shard.url(`/mpub?topic=${encodeURIComponent(topic)}`), 'POST', bodies.join('\n'));
}

export interface ChannelStats {
  depth: number;
  in_flight_count: number;
  deferred_count: number;
  requeue_count: number;
  message_count: number;
  client_count: number;
}

export async function channelStats(shard: ShardProcess, topic: string, channel: string): Promise<ChannelStats | null> {
  const doc = (await call(shard.url(`/stats?format=json&topic=${encodeURIComponent(topic)}&channel=${encodeURIComponent(channel)}`))).json() as {
    topics: Array<{ channels: Array<ChannelStats & { channel_name: string }> }>;
  };
  return doc.topics[0]?.channels.find((ch) => ch.channel_name === channel) ?? null;
}

/** Every shard has a consumer on some channel of the topic whose name passes `match`. */
export async function consumersOnEveryShard(c: Cluster, topic: string, match: (channel: string) => boolean): Promise<boolean> {
  for (const s of c.shards) {
    const doc = (await call(s.url(`/stats?format=json&topic=${encodeURIComponent(topic)}`))).json() as {
      topics: Array<{ channels: Array<{ channel_name: string; client_count: number }> }>;
    };
    if (!(doc.topics[0]?.channels ?? []).some((ch) => match(ch.channel_name) && ch.client_count > 0)) return false;
  }
  return true;
}

/** Nothing left to deliver on the channel, on either shard. */
export async function drained(c: Cluster, topic: string, channel: string): Promise<boolean> {
  for (const s of c.shards) {
    const st = await channelStats(s, topic, channel);
    if (st === null || st.depth + st.in_flight_count + st.deferred_count > 0) return false;
  }
  return true;
}

export interface Tool {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** The structured log lines so far. */
  logs(): Array<Record<string, unknown>>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns `sluice <tool> …`; `stdin` is written and closed at once if given (else stdin is empty); `env` is added to this process's. */
export function spawnTool(args: string[], stdin?: string | Buffer, env?: NodeJS.ProcessEnv): Tool {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: env ? { ...process.env, ...env } : undefined });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => (out += d));
  child.stderr!.on('data', (d: string) => (err += d));
  child.stdin!.on('error', () => undefined); // a tool that exits early closes its stdin
  child.stdin!.end(stdin ?? '');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    logs: () =>
      err
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            return {};
          }
        }),
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!done) child.kill(signal);
      return exited;
    },
  };
}

/** Waits for the tool to exit, killing it (and failing) after `timeoutMs`. */
export async function exitCode(tool: Tool, timeoutMs = 10_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      tool.child.kill('SIGKILL');
      reject(new Error(`tool still running after ${timeoutMs} ms; stderr:\n${tool.stderr()}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([tool.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
