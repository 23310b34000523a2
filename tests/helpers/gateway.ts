// Starts gateways: in-process (createGateway + in-process shards, for supertest) or as real
// `sluice gateway` processes on ephemeral ports.

import { createShard, Shard } from '../../shard/shard';
import { shardFlags } from '../../shard/flags';
import { parseConfig } from '../../runtime/config';
import { silentLogger } from '../../runtime/logger';
import { Running, startProgram, tempDir } from './process';
import { call, Answer } from './shard';

export interface InProcessShard {
  shard: Shard;
  http: string;
  close(): Promise<void>;
}

/** A shard in this process on an ephemeral port (its own temp data directory). */
export async function startInProcessShard(args: string[] = []): Promise<InProcessShard> {
  const dir = tempDir('sluice-gw-shard-');
  const { config } = parseConfig(shardFlags, ['--http-address', '127.0.0.1:0', '--tcp-address', '127.0.0.1:0', '--data-path', dir.path, ...args]);
  const shard = createShard(config, silentLogger());
  const addr = await shard.start();
  return {
    shard,
    http: addr.http,
    async close() {
      await shard.close();
      dir.remove();
    },
  };
}

export interface GatewayProcess extends Running {
  http: string;
  url(path: string): string;
  call(path: string, method?: string, body?: string | Buffer, headers?: Record<string, string>): Promise<Answer>;
}

export async function startGateway(args: string[] = [], env?: NodeJS.ProcessEnv): Promise<GatewayProcess> {
  const p = await startProgram(['gateway', '--http-address', '127.0.0.1:0', ...args], { env });
  const http = p.addresses.http;
  const url = (path: string) => `http://${http}${path}`;
  return Object.assign(p, { http, url, call: (path: string, method = 'GET', body?: string | Buffer, headers: Record<string, string> = {}) => call(url(path), method, body, headers) });
}
