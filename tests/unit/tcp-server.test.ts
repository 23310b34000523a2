// The TCP server in-process, with its seams filled by test doubles: transport upgrades (TLS
// from node:tls, deflate from node:zlib, as nsqd wraps its conn) and an Authenticator. Proves the
// IDENTIFY → upgrade → OK sequence with nsqjs and raw sockets, AUTH and its errors, and
// --tls-required, independently of the production upgrade and auth modules.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { Engine } from '../../shard/engine/engine';
import { MemoryStore } from '../../shard/engine/store';
import { silentLogger } from '../../runtime/logger';
import type { AuthSession, Authenticator } from '../../shard/tcp/client-auth';
import { TcpServer, type TcpServerOptions } from '../../shard/tcp/server';
import type { Transport, Upgrades } from '../../shard/tcp/transport';
import { cmd, RawClient } from '../helpers/nsq-raw';
import { waitFor } from '../helpers/process';

/* eslint-disable @typescript-eslint/no-require-imports */
const nsq = require('nsqjs');

const OPTS: Omit<TcpServerOptions, 'tlsRequired'> = {
  address: '127.0.0.1:0',
  maxRdyCount: 2500,
  maxMsgSize: 1 << 20,
  maxBodySize: 5 << 20,
  maxReqTimeoutMs: 3_600_000,
  msgTimeoutMs: 60_000,
  maxMsgTimeoutMs: 900_000,
  heartbeatIntervalMs: 30_000,
  maxHeartbeatIntervalMs: 60_000,
  outputBufferSize: 16 * 1024,
  outputBufferTimeoutMs: 250,
  maxOutputBufferSize: 64 * 1024,
  minOutputBufferTimeoutMs: 25,
  maxOutputBufferTimeoutMs: 30_000,
  maxChannelConsumers: 0,
  deflate: true,
  maxDeflateLevel: 6,
  snappy: true,
};

let certDir: string;
let key: Buffer;
let cert: Buffer;

beforeAll(() => {
  certDir = mkdtempSync(path.join(tmpdir(), 'sluice-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', path.join(certDir, 'key.pem'), '-out', path.join(certDir, 'cert.pem')], { stdio: 'ignore' });
  key = readFileSync(path.join(certDir, 'key.pem'));
  cert = readFileSync(path.join(certDir, 'cert.pem'));
});
afterAll(() => rmSync(certDir, { recursive: true, force: true }));

/** What nsqd does: TLS over the raw conn, then a raw-deflate reader and writer (sync flush) over that. */
function testUpgrades(): Upgrades {
  return {
    async tls(socket) {
      const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: tls.createSecureContext({ key, cert }) });
      await once(secure, 'secure');
      return {
        transport: { input: secure, output: secure },
        info: { cipherSuite: secure.getCipher().standardName, version: secure.getProtocol() ?? '', negotiatedProtocol: '', negotiatedProtocolIsMutual: false, commonName: '' },
      };
    },
    deflate(t: Transport, level: number): Transport {
      const inflate = zlib.createInflateRaw();
      const deflate = zlib.createDeflateRaw({ level, flush: zlib.constants.Z_SYNC_FLUSH });
      t.input.pipe(inflate);
      deflate.pipe(t.output);
      return { input: inflate, output: deflate };
    },
  };
}

/** Grants by secret: "good" may use topic "allowed" (expiring once when `expireOnce`), "none" nothing, else failure. */
class TestAuth implements Authenticator {
  calls: string[] = [];
  expireOnce = false;
  async authenticate(req: { secret: string; remoteIp: string; tls: boolean }): Promise<AuthSession> {
    this.calls.push(`${req.secret}@${req.remoteIp} tls=${req.tls}`);
    await new Promise((r) => setTimeout(r, 5)); // answers arrive later, as over HTTP
    if (req.secret === 'none') return { identity: '', identityUrl: '', permissionCount: 0, expired: () => false, allows: () => false };
    if (req.secret !== 'good') throw new Error('auth server said no');
    let expired = this.expireOnce;
    this.expireOnce = false;
    return {
      identity: 'alice',
      identityUrl: 'https://auth.example/alice',
      permissionCount: 1,
      expired: () => expired,
      allows: (topic) => {
        expired = false;
        return topic === 'allowed';
      },
    };
  }
}

interface Running {
  server: TcpServer;
  engine: Engine;
  address: string;
}

const running: Running[] = [];
const clients: RawClient[] = [];

async function start(opts: Partial<TcpServerOptions> = {}, deps: { upgrades?: Upgrades; auth?: Authenticator } = {}): Promise<Running> {
  const engine = new Engine({}, { store: new MemoryStore() });
  engine.start();
  const server = new TcpServer({ ...OPTS, tlsRequired: false, ...opts }, { engine, logger: silentLogger(), ...deps });
  const addr = await server.start();
  const r = { server, engine, address: `127.0.0.1:${addr.port}` };
  running.push(r);
  return r;
}

async function open(r: Running): Promise<RawClient> {
  const c = await RawClient.connect(r.address);
  clients.push(c);
  return c;
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const r of running.splice(0)) {
    await r.server.close();
    r.engine.close();
  }
});

describe('transport upgrades', () => {
  it('lets nsqjs negotiate deflate and publish and consume through it', async () => {
    const r = await start({}, { upgrades: testUpgrades() });
    const w = new nsq.Writer('127.0.0.1', Number(r.address.split(':')[1]), { deflate: true, deflateLevel: 3 });
    w.connect();
    await once(w, 'ready');
    await new Promise<void>((resolve, reject) => w.publish('z', ['one', 'two', 'three'], (err?: Error) => (err ? reject(err) : resolve())));
    const got: string[] = [];
    const reader = new nsq.Reader('z', 'ch', { nsqdTCPAddresses: [r.address], deflate: true, maxInFlight: 10 });
    reader.on('message', (m: { body: Buffer; finish(): void }) => {
      got.push(m.body.toString());
      m.finish();
    });
    reader.connect();
    await waitFor(() => got.length === 3, 5000, 'messages over deflate');
    expect(got.sort()).toEqual(['one', 'three', 'two']);
    const client = r.engine.findChannel('z', 'ch')!.clientStats()[0];
    expect(client).toMatchObject({ deflate: true, snappy: false, tls: false });
    reader.close();
    w.close();
  });

  it('upgrades to TLS after the IDENTIFY answer, confirms with OK over TLS, and meets --tls-required', async () => {
    const r = await start({ tlsRequired: true }, { upgrades: testUpgrades() });
    const early = await open(r);
    early.write(cmd('PUB t', 'x'));
    const e = await early.next();
    expect(e.text).toBe('E_INVALID cannot PUB in current state (TLS required)');

    const c = await open(r);
    const answer = JSON.parse((await c.identify({ feature_negotiation: true, tls_v1: true })).text);
    expect(answer).toMatchObject({ tls_v1: true, deflate: false, snappy: false, auth_required: false });
    c.detach();
    const secure = tls.connect({ socket: c.socket, rejectUnauthorized: false });
    await once(secure, 'secureConnect');
    const t = RawClient.over(secure);
    clients.push(t);
    expect(await t.response()).toBe('OK');
    t.write(cmd('SUB t ch'));
    expect(await t.response()).toBe('OK');
    t.write(cmd('PUB t', 'secret'));
    expect(await t.response()).toBe('OK');
    t.write(cmd('RDY 1'));
    expect((await t.message()).body.toString()).toBe('secret');
    const client = r.engine.findChannel('t', 'ch')!.clientStats()[0];
    expect(client).toMatchObject({ tls: true, tls_version: expect.stringMatching(/^TLS/) });
    expect(client.tls_cipher_suite).not.toBe('');
  });

  it('does not offer what it cannot do: no upgrade modules, no tls_v1/deflate/snappy', async () => {
    const r = await start();
    const c = await open(r);
    const answer = JSON.parse((await c.identify({ feature_negotiation: true, tls_v1: true, deflate: true, snappy: true })).text);
    expect(answer).toMatchObject({ tls_v1: false, deflate: false, snappy: false });
    c.write(cmd('PUB t', 'plain'));
    expect(await c.response()).toBe('OK');
  });
});

describe('AUTH', () => {
  it('requires AUTH before PUB/SUB, and reports auth_required', async () => {
    const auth = new TestAuth();
    const r = await start({}, { auth });
    const c = await open(r);
    expect(JSON.parse((await c.identify({ feature_negotiation: true })).text).auth_required).toBe(true);
    c.write(cmd('PUB allowed', 'x'));
    expect((await c.next()).text).toBe('E_AUTH_FIRST AUTH required before PUB');
    await c.waitClosed();
    const s = await open(r);
    s.write(cmd('SUB allowed ch'));
    expect((await s.next()).text).toBe('E_AUTH_FIRST AUTH required before SUB');
  });

  it('authenticates, authorizes per topic, and answers failures with nsqd errors', async () => {
    const auth = new TestAuth();
    const r = await start({}, { auth });
    const c = await open(r);
    // AUTH then two commands in one write: they wait for the auth server's answer, in order
    c.write(Buffer.concat([cmd('AUTH', 'good'), cmd('PUB allowed', 'x'), cmd('SUB allowed ch')]));
    expect(JSON.parse(await c.response())).toEqual({ identity: 'alice', identity_url: 'https://auth.example/alice', permission_count: 1 });
    expect(await c.response()).toBe('OK');
    expect(await c.response()).toBe('OK');
    expect(auth.calls).toEqual(['good@127.0.0.1 tls=false']);
    const client = r.engine.findChannel('allowed', 'ch')!.clientStats()[0];
    expect(client).toMatchObject({ authed: true, auth_identity: 'alice', auth_identity_url: 'https://auth.example/alice' });

    const other = await open(r);
    other.write(Buffer.concat([cmd('AUTH', 'good'), cmd('PUB other', 'x')]));
    await other.response();
    expect((await other.next()).text).toBe('E_UNAUTHORIZED AUTH failed for PUB on "other" ""');

    const twice = await open(r);
    twice.write(Buffer.concat([cmd('AUTH', 'good'), cmd('AUTH', 'good')]));
    await twice.response();
    expect((await twice.next()).text).toBe('E_INVALID AUTH already set');

    for (const [secret, text] of [
      ['bad', 'E_AUTH_FAILED AUTH failed'],
      ['none', 'E_UNAUTHORIZED AUTH no authorizations found'],
    ]) {
      const f = await open(r);
      f.write(cmd('AUTH', secret));
      expect((await f.next()).text).toBe(text);
      await f.waitClosed();
    }
  });

  it('asks the auth server again when the grant has expired, then runs the command', async () => {
    const auth = new TestAuth();
    auth.expireOnce = true;
    const r = await start({}, { auth });
    const c = await open(r);
    c.write(cmd('AUTH', 'good'));
    await c.response();
    c.write(Buffer.concat([cmd('PUB allowed', 'a'), cmd('PUB allowed', 'b')]));
    expect(await c.response()).toBe('OK');
    expect(await c.response()).toBe('OK');
    expect(auth.calls).toHaveLength(2);
    expect(r.engine.findTopic('allowed')!.messageCount).toBe(2);
  });

  it('answers AUTH with E_AUTH_DISABLED without an auth server', async () => {
    const r = await start();
    const c = await open(r);
    c.write(cmd('AUTH', 'x'));
    expect((await c.next()).text).toBe('E_AUTH_DISABLED AUTH disabled');
  });
});
