// The negotiated features of the TCP protocol against real shard processes: TLS (with
// --tls-required), snappy and deflate, driven by nsqjs and by raw sockets, and AUTH against an
// auth server (--auth-http-address) answering as nsqd's auth servers do.

import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { cmd, RawClient } from '../helpers/nsq-raw';
import { tempDir, waitFor } from '../helpers/process';
import { call, ShardProcess, startShard } from '../helpers/shard';

/* eslint-disable @typescript-eslint/no-require-imports */
const nsq = require('nsqjs');

const certs = tempDir('sluice-tls-');
const CERT = path.join(certs.path, 'cert.pem');
const KEY = path.join(certs.path, 'key.pem');

const shards: ShardProcess[] = [];
const clients: RawClient[] = [];
const closers: (() => void)[] = [];

beforeAll(() => {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', KEY, '-out', CERT], { stdio: 'ignore' });
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const close of closers.splice(0)) close();
});
afterAll(async () => {
  for (const s of shards) await s.stop();
  certs.remove();
});

async function shard(args: string[]): Promise<ShardProcess> {
  const s = await startShard(args);
  shards.push(s);
  return s;
}

async function open(s: ShardProcess): Promise<RawClient> {
  const c = await RawClient.connect(s.addresses.tcp);
  clients.push(c);
  return c;
}

/** nsqjs Writer + Reader with `opts` on both: publishes `bodies`, resolves with what the Reader got. */
async function roundTrip(s: ShardProcess, topic: string, opts: Record<string, unknown>, bodies: string[]): Promise<string[]> {
  const [host, port] = s.addresses.tcp.split(':');
  const w = new nsq.Writer(host, Number(port), opts);
  closers.push(() => w.close());
  const errors: Error[] = [];
  w.on('error', (e: Error) => errors.push(e));
  w.connect();
  await once(w, 'ready');
  await new Promise<void>((resolve, reject) => w.publish(topic, bodies, (err?: Error) => (err ? reject(err) : resolve())));
  const got: string[] = [];
  const r = new nsq.Reader(topic, 'ch', { nsqdTCPAddresses: [s.addresses.tcp], maxInFlight: 50, ...opts });
  closers.push(() => r.close());
  r.on('error', (e: Error) => errors.push(e));
  r.on('message', (m: { body: Buffer; finish(): void }) => {
    got.push(m.body.toString());
    m.finish();
  });
  r.connect();
  await waitFor(() => got.length >= bodies.length, 10_000, `${bodies.length} messages`);
  expect(errors).toEqual([]);
  return got.sort();
}

async function client(s: ShardProcess, topic: string): Promise<any> {
  const doc = (await call(s.url(`/stats?format=json&topic=${topic}&channel=ch&include_clients=true`))).json();
  return doc.topics[0].channels[0].clients[0];
}

const BODIES = Array.from({ length: 300 }, (_, i) => `message ${i} `.repeat(20));

describe('TLS', () => {
  it('with --tls-required refuses commands before TLS, then upgrades after the IDENTIFY answer', async () => {
    const s = await shard(['--tls-cert', CERT, '--tls-key', KEY, '--tls-required']);
    const early = await open(s);
    early.write(cmd('PUB t', 'x'));
    expect((await early.next()).text).toBe('E_INVALID cannot PUB in current state (TLS required)');
    await early.waitClosed();

    const c = await open(s);
    expect(JSON.parse((await c.identify({ feature_negotiation: true, tls_v1: true })).text)).toMatchObject({ tls_v1: true });
    c.detach();
    const secure = tls.connect({ socket: c.socket, rejectUnauthorized: false });
    await once(secure, 'secureConnect');
    const t = RawClient.over(secure);
    clients.push(t);
    expect(await t.response()).toBe('OK');
    t.write(cmd('PUB t', 'over tls'));
    expect(await t.response()).toBe('OK');
  });

  it('carries nsqjs over TLS + snappy, shown in /stats', async () => {
    const s = await shard(['--tls-cert', CERT, '--tls-key', KEY]);
    const got = await roundTrip(s, 'tls_snappy', { tls: true, tlsVerification: false, snappy: true }, BODIES);
    expect(got).toEqual([...BODIES].sort());
    expect(await client(s, 'tls_snappy')).toMatchObject({ tls: true, snappy: true, deflate: false, tls_version: expect.stringMatching(/^TLS1\.[23]$/) });
  });
});

describe('compression', () => {
  let s: ShardProcess;
  beforeAll(async () => {
    s = await shard([]);
  });

  it('carries nsqjs over deflate and over snappy', async () => {
    expect(await roundTrip(s, 'deflated', { deflate: true, deflateLevel: 4 }, BODIES)).toEqual([...BODIES].sort());
    expect(await client(s, 'deflated')).toMatchObject({ deflate: true, snappy: false, tls: false });
    expect(await roundTrip(s, 'snappied', { snappy: true }, BODIES)).toEqual([...BODIES].sort());
    expect(await client(s, 'snappied')).toMatchObject({ snappy: true, deflate: false });
  });

  it('refuses deflate and snappy together (E_IDENTIFY_FAILED), and offers nothing with --deflate=false --snappy=false', async () => {
    const c = await open(s);
    c.write(cmd('IDENTIFY', JSON.stringify({ feature_negotiation: true, deflate: true, snappy: true })));
    expect((await c.next()).text).toBe('E_IDENTIFY_FAILED cannot enable both deflate and snappy compression');
    await c.waitClosed();
    const off = await shard(['--deflate=false', '--snappy=false']);
    const d = await open(off);
    expect(JSON.parse((await d.identify({ feature_negotiation: true, deflate: true, snappy: true })).text)).toMatchObject({ deflate: false, snappy: false, tls_v1: false });
  });
});

describe('AUTH with --auth-http-address', () => {
  let s: ShardProcess;
  const asked: URLSearchParams[] = [];
  let server: http.Server;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const q = new URL(req.url ?? '/', 'http://x').searchParams;
      asked.push(q);
      const secret = q.get('secret');
      const answer =
        secret === 'good'
          ? { ttl: 3600, identity: 'alice', identity_url: 'https://id.example/alice', authorizations: [{ topic: 'allowed.*', channels: ['.*'], permissions: ['subscribe', 'publish'] }] }
          : secret === 'none'
            ? { ttl: 3600, identity: 'nobody', authorizations: [] }
            : null;
      res.writeHead(answer ? 200 : 403, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer ?? { message: 'no' }));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    s = await shard(['--auth-http-address', `127.0.0.1:${(server.address() as AddressInfo).port}`]);
  });
  afterAll(() => {
    server.close();
  });

  it('answers AUTH and checks every PUB and SUB, with nsqd errors', async () => {
    const c = await open(s);
    expect(JSON.parse((await c.identify({ feature_negotiation: true })).text).auth_required).toBe(true);
    c.write(cmd('PUB allowed_1', 'x'));
    expect((await c.next()).text).toBe('E_AUTH_FIRST AUTH required before PUB');

    const a = await open(s);
    a.write(Buffer.concat([cmd('AUTH', 'good'), cmd('PUB allowed_1', 'x'), cmd('SUB allowed_1 ch')]));
    expect(JSON.parse(await a.response())).toEqual({ identity: 'alice', identity_url: 'https://id.example/alice', permission_count: 1 });
    expect(await a.response()).toBe('OK');
    expect(await a.response()).toBe('OK');
    const q = asked[asked.length - 1];
    expect({ secret: q.get('secret'), remote_ip: q.get('remote_ip'), tls: q.get('tls') }).toEqual({ secret: 'good', remote_ip: '127.0.0.1', tls: 'false' });
    expect(await client(s, 'allowed_1')).toMatchObject({ authed: true, auth_identity: 'alice', auth_identity_url: 'https://id.example/alice' });

    const other = await open(s);
    other.write(Buffer.concat([cmd('AUTH', 'good'), cmd('PUB secret_topic', 'x')]));
    await other.response();
    expect((await other.next()).text).toBe('E_UNAUTHORIZED AUTH failed for PUB on "secret_topic" ""');
    await other.waitClosed();

    for (const [secret, text] of [
      ['wrong', 'E_AUTH_FAILED AUTH failed'],
      ['none', 'E_UNAUTHORIZED AUTH no authorizations found'],
    ]) {
      const f = await open(s);
      f.write(cmd('AUTH', secret));
      expect((await f.next()).text).toBe(text);
      await f.waitClosed();
    }
  });

  it('lets nsqjs publish and consume with authSecret', async () => {
    expect(await roundTrip(s, 'allowed_nsqjs', { authSecret: 'good' }, ['a', 'b'])).toEqual(['a', 'b']);
  });
});
