// Starts a real shard process on ephemeral ports with its own data directory, and small
// HTTP helpers for talking to it with undici.

import { request } from 'undici';
import { Running, startProgram, tempDir } from './process';

export interface ShardProcess extends Running {
  http: string;
  dataPath: string;
  url(path: string): string;
}

export async function startShard(args: string[] = [], dataPath?: string): Promise<ShardProcess> {
  const dir = dataPath ?? tempDir().path;
  const p = await startProgram(['shard', '--http-address', '127.0.0.1:0', '--tcp-address', '127.0.0.1:0', '--data-path', dir, ...args]);
  const http = p.addresses.http;
  return Object.assign(p, { http, dataPath: dir, url: (path: string) => `http://${http}${path}` });
}

export interface Answer {
  status: number;
  text: string;
  json(): any;
  headers: Record<string, string | string[] | undefined>;
}

export async function call(url: string, method = 'GET', body?: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(url, { method: method as 'GET', body, headers });
  const text = await res.body.text();
  return { status: res.statusCode, text, json: () => JSON.parse(text), headers: res.headers };
}
