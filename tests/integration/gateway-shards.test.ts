// The shard client (gateway/shards.ts) against a scripted HTTP server on 127.0.0.1: a shard's 4xx
// never trips the breaker, 5xx does, a refused connection opens it at once, and after the reset
// time one trial call that succeeds closes it again.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../../runtime/logger';
import { ShardClient, ShardError } from '../../gateway/shards';
import { waitFor } from '../helpers/process';

let status = 200;
let server: http.Server;
let address: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const body = status === 200 ? JSON.stringify({ ids: ['0123456789abcdef'], duplicates: [] }) : JSON.stringify({ message: status === 400 ? 'INVALID_TOPIC' : 'BOOM' });
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

const options = { connections: 2, timeoutMs: 1000, resetMs: 200, errorThresholdPercentage: 50, volumeThreshold: 2 };

it('does not trip on 4xx answers, trips on 5xx, and closes again after a good trial call', async () => {
  const c = new ShardClient(address, options, silentLogger());
  try {
    status = 400;
    for (let i = 0; i < 10; i++) await expect(c.mpub('t', Buffer.alloc(8))).rejects.toMatchObject({ status: 400, code: 'INVALID_TOPIC' });
    expect(c.state).toBe('closed');
  } finally {
    await c.close();
  }
  const d = new ShardClient(address, options, silentLogger());
  try {
    const c = d;
    status = 500;
    for (let i = 0; i < 4; i++) await c.mpub('t', Buffer.alloc(8)).catch((e: unknown) => e);
    expect(c.state).toBe('open');
    await expect(c.mpub('t', Buffer.alloc(8))).rejects.toMatchObject({ code: 'EOPENBREAKER' });
    status = 200;
    await waitFor(() => c.state === 'half_open', 2000, 'half-open');
    expect(await c.mpub('t', Buffer.alloc(8))).toEqual({ ids: ['0123456789abcdef'], duplicates: [] });
    expect(c.state).toBe('closed');
  } finally {
    await d.close();
  }
});

it('opens at once when the shard refuses connections', async () => {
  const probe = http.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const c = new ShardClient(`127.0.0.1:${port}`, { ...options, volumeThreshold: 100 }, silentLogger());
  try {
    const err = await c.mpub('t', Buffer.alloc(8)).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(ShardError);
    expect(c.state).toBe('open');
  } finally {
    await c.close();
  }
});
