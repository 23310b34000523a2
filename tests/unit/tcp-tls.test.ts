// The TLS upgrade on real loopback sockets with a throwaway CA, server and client certificates
// made by openssl: nsqd's client auth policies accept and refuse what they should, bytes read
// past IDENTIFY reach the handshake, and the /stats fields come from the session.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import {
  NO_TLS_STATS,
  TlsConfigError,
  TlsHandshakeError,
  buildServerTls,
  parseTlsMinVersion,
  peerCommonName,
  tlsStats,
  tlsUpgrade,
  upgradeServerSocket,
  type ServerTls,
  type TlsOptions,
} from '../../shard/tcp/tls';
import { tempDir } from '../helpers/process';

const dir = tempDir('sluice-tls-');
const file = (name: string): string => path.join(dir.path, name);
const pem = (name: string): Buffer => readFileSync(file(name));

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir.path, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A P-256 key and a certificate for `cn`: signed by the test CA, or self-signed. */
function makeCert(name: string, cn: string, signer: 'ca' | 'self', ext?: string): void {
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`];
  if (signer === 'self') {
    openssl('req', '-x509', ...key, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${cn}`);
    return;
  }
  openssl('req', '-new', ...key, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  const extArgs: string[] = [];
  if (ext) {
    writeFileSync(file(`${name}.ext`), ext);
    extArgs.push('-extfile', `${name}.ext`);
  }
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', ...extArgs);
}

beforeAll(() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    throw new Error('these tests need the openssl command (apt-get install openssl)');
  }
  makeCert('ca', 'Sluice Test CA', 'self');
  makeCert('server', 'localhost', 'ca', 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  makeCert('client', 'good-client', 'ca');
  makeCert('other', 'other-client', 'ca');
  makeCert('rogue', 'rogue', 'self');
});

afterAll(() => dir.remove());

function options(over: Partial<TlsOptions> = {}): TlsOptions {
  return {
    tlsCert: file('server.pem'),
    tlsKey: file('server.key'),
    tlsRootCaFile: file('ca.pem'),
    tlsClientAuthPolicy: '',
    tlsMinVersion: '',
    tlsRequired: false,
    ...over,
  };
}

function serverTls(over: Partial<TlsOptions> = {}): ServerTls {
  const ctx = buildServerTls(options(over));
  if (ctx === null) throw new Error('expected a TLS context');
  return ctx;
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: Error };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: Error) => ({ ok: false as const, error }),
  );

const cleanup: { destroy(): void }[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c.destroy();
});

const PREFIX = 'IDENTIFY\n';

interface Handshake {
  server: Settled<tls.TLSSocket>;
  client: Settled<tls.TLSSocket>;
  /** How many bytes past the prefix the server had read before upgrading. */
  leftover: number;
  clientSocket: tls.TLSSocket | null;
}

/**
 * A loopback connection as the shard sees one: the client sends a line, then starts TLS at
 * once; the server reads the line (and, unless `immediate`, at least one byte of what follows,
 * so leftover bytes are exercised) and upgrades.
 */
async function handshake(ctx: ServerTls, client: tls.ConnectionOptions, opts: { immediate?: boolean; startTls?: boolean } = {}): Promise<Handshake> {
  let leftover = 0;
  const server = net.createServer();
  cleanup.push({ destroy: () => server.close() });
  const serverSide = new Promise<tls.TLSSocket>((resolve, reject) => {
    server.once('connection', (raw) => {
      // Once upgraded, the raw socket belongs to the TLS socket: destroying it and then the TLS
      // socket crashes Node, so only a raw socket that was never upgraded is destroyed here.
      let upgraded = false;
      cleanup.push({ destroy: () => upgraded || raw.destroy() });
      let acc = Buffer.alloc(0);
      const onData = (b: Buffer): void => {
        acc = Buffer.concat([acc, b]);
        const need = PREFIX.length + (opts.immediate ? 0 : 1);
        if (acc.length < need) return;
        raw.removeListener('data', onData);
        raw.pause();
        expect(acc.subarray(0, PREFIX.length).toString()).toBe(PREFIX);
        const rest = acc.subarray(PREFIX.length);
        leftover = rest.length;
        upgraded = true;
        upgradeServerSocket(raw, ctx, rest).then((t) => {
          cleanup.push(t);
          resolve(t);
        }, reject);
      };
      raw.on('data', onData);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  let clientSocket: tls.TLSSocket | null = null;
  const clientSide = new Promise<tls.TLSSocket>((resolve, reject) => {
    let wrapped = false;
    const raw = net.connect(port, '127.0.0.1', () => {
      raw.write(PREFIX);
      if (opts.startTls === false) return;
      wrapped = true;
      const t = tls.connect({ socket: raw, servername: 'localhost', ca: pem('ca.pem'), ...client });
      clientSocket = t;
      cleanup.push(t);
      t.once('secureConnect', () => resolve(t));
      t.once('error', reject);
      t.once('close', () => reject(new Error('closed before the handshake finished')));
    });
    cleanup.push({ destroy: () => wrapped || raw.destroy() });
    raw.once('error', reject);
    raw.once('close', () => reject(new Error('closed before the handshake finished')));
  });
  const [s, c] = await Promise.all([settle(serverSide), settle(clientSide)]);
  return { server: s, client: c, leftover, clientSocket };
}

/** Client says ping, server answers pong: the session carries data both ways. */
async function pingPong(server: tls.TLSSocket, client: tls.TLSSocket): Promise<void> {
  const atServer = new Promise<string>((resolve) => server.once('data', (b: Buffer) => resolve(b.toString())));
  client.write('ping');
  expect(await atServer).toBe('ping');
  const atClient = new Promise<string>((resolve) => client.once('data', (b: Buffer) => resolve(b.toString())));
  server.write('pong');
  expect(await atClient).toBe('pong');
}

/** The client's side of a refused upgrade: whatever it thought of the handshake, the connection ends. */
async function clientIsDropped(h: Handshake): Promise<void> {
  const c = h.clientSocket;
  if (c === null || c.destroyed) return;
  c.on('error', () => {});
  await new Promise<void>((resolve) => (c.closed ? resolve() : c.once('close', () => resolve())));
}

function expectRefused(h: Handshake, code: string): void {
  expect(h.server.ok).toBe(false);
  const err = (h.server as { error: Error }).error;
  expect(err).toBeInstanceOf(TlsHandshakeError);
  expect((err as TlsHandshakeError).code).toBe(code);
}

const clientCert = (name: string): tls.ConnectionOptions => ({ cert: pem(`${name}.pem`), key: pem(`${name}.key`) });

describe('configuration (nsqd buildTLSConfig)', () => {
  test('no --tls-cert and --tls-key: no TLS (IDENTIFY answers tls_v1 false)', () => {
    expect(buildServerTls(options({ tlsCert: '', tlsKey: '', tlsRootCaFile: '' }))).toBeNull();
  });

  test('requiring TLS, or any client auth policy, needs a key and cert', () => {
    expect(() => buildServerTls(options({ tlsCert: '', tlsKey: '', tlsRequired: true }))).toThrow(
      'cannot require TLS client connections without TLS key and cert',
    );
    expect(() => buildServerTls(options({ tlsCert: '', tlsKey: '', tlsClientAuthPolicy: 'require' }))).toThrow(TlsConfigError);
  });

  test('a client auth policy implies --tls-required, as in nsqd', () => {
    expect(serverTls().required).toBe(false);
    expect(serverTls({ tlsRequired: true }).required).toBe(true);
    expect(serverTls({ tlsClientAuthPolicy: 'require' }).required).toBe(true);
    expect(serverTls({ tlsClientAuthPolicy: 'require-verify' }).policy).toBe('require-verify');
  });

  test('half a key pair, unreadable files and unknown values are configuration errors', () => {
    expect(() => buildServerTls(options({ tlsKey: '' }))).toThrow(TlsConfigError);
    expect(() => buildServerTls(options({ tlsCert: file('missing.pem') }))).toThrow(/--tls-cert/);
    expect(() => buildServerTls(options({ tlsRootCaFile: file('missing-ca.pem') }))).toThrow(/--tls-root-ca-file/);
    expect(() => buildServerTls(options({ tlsKey: file('rogue.key') }))).toThrow(TlsConfigError); // key does not match the cert
    expect(() => buildServerTls(options({ tlsClientAuthPolicy: 'requir' }))).toThrow(TlsConfigError);
    expect(() => buildServerTls(options({ tlsMinVersion: 'tls9' }))).toThrow('unknown tlsVersionOption "tls9"');
  });

  test('--tls-min-version takes nsqd\'s names, case-insensitively', () => {
    expect(parseTlsMinVersion('')).toBeUndefined();
    expect(parseTlsMinVersion('tls1.0')).toBe('TLSv1');
    expect(parseTlsMinVersion('TLS1.1')).toBe('TLSv1.1');
    expect(parseTlsMinVersion('tls1.2')).toBe('TLSv1.2');
    expect(parseTlsMinVersion('tls1.3')).toBe('TLSv1.3');
    expect(() => parseTlsMinVersion('ssl3.0')).toThrow(TlsConfigError);
  });
});

describe('upgrade on a loopback socket', () => {
  test('bytes read past the IDENTIFY line reach the handshake, and the session carries data', async () => {
    const h = await handshake(serverTls(), {});
    expect(h.leftover).toBeGreaterThan(0);
    expect(h.server.ok && h.client.ok).toBe(true);
    if (!h.server.ok || !h.client.ok) return;
    await pingPong(h.server.value, h.client.value);
  });

  test('upgrading with no leftover bytes works too', async () => {
    const h = await handshake(serverTls(), {}, { immediate: true });
    expect(h.server.ok && h.client.ok).toBe(true);
  });

  test('/stats fields from the session (TLS 1.3 and TLS 1.2)', async () => {
    const h13 = await handshake(serverTls(), {});
    if (!h13.server.ok) throw h13.server.error;
    expect(tlsStats(h13.server.value)).toEqual({
      tls: true,
      tls_cipher_suite: expect.stringMatching(/^TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/),
      tls_version: 'TLS1.3',
      tls_negotiated_protocol: '',
      tls_negotiated_protocol_is_mutual: true,
    });
    const h12 = await handshake(serverTls(), { maxVersion: 'TLSv1.2' });
    if (!h12.server.ok) throw h12.server.error;
    const s = tlsStats(h12.server.value);
    expect(s.tls_version).toBe('TLS1.2');
    // IANA names, as Go's constants (the server key is ECDSA)
    expect(s.tls_cipher_suite).toMatch(/^TLS_ECDHE_ECDSA_WITH_/);
    expect(tlsStats(null)).toEqual(NO_TLS_STATS);
  });

  test('--tls-min-version tls1.3 refuses a TLS 1.2 client', async () => {
    const h = await handshake(serverTls({ tlsMinVersion: 'tls1.3' }), { maxVersion: 'TLSv1.2' });
    expectRefused(h, 'E_TLS_HANDSHAKE');
    expect(h.client.ok).toBe(false);
  });

  test('a client that never starts the handshake is dropped after the timeout', async () => {
    const ctx = buildServerTls({ ...options(), handshakeTimeoutMs: 300 }) as ServerTls;
    const started = Date.now();
    const h = await handshake(ctx, {}, { immediate: true, startTls: false });
    expectRefused(h, 'E_TLS_HANDSHAKE');
    expect((h.server as { error: Error }).error.message).toMatch(/time/);
    expect(Date.now() - started).toBeLessThan(1300);
  });

  test('a socket that is already gone is refused at once', async () => {
    const raw = new net.Socket();
    await expect(upgradeServerSocket(raw, serverTls())).rejects.toBeInstanceOf(TlsHandshakeError);
  });

  test('concurrent upgrades each get their own session', async () => {
    const ctx = serverTls({ tlsClientAuthPolicy: 'require' });
    const names = ['client', 'other', 'rogue', 'client', 'other'];
    const all = await Promise.all(names.map((n) => handshake(ctx, clientCert(n))));
    const expected = { client: 'good-client', other: 'other-client', rogue: 'rogue' } as Record<string, string>;
    all.forEach((h, i) => {
      if (!h.server.ok) throw h.server.error;
      expect(peerCommonName(h.server.value)).toBe(expected[names[i]]);
    });
    await Promise.all(all.map((h) => (h.server.ok && h.client.ok ? pingPong(h.server.value, h.client.value) : undefined)));
  });

  test('tlsUpgrade: the connection seam gets the TLS socket as both streams and the session info', async () => {
    const ctx = serverTls({ tlsClientAuthPolicy: 'require-verify' });
    const upgrade = tlsUpgrade(ctx);
    const server = net.createServer();
    cleanup.push({ destroy: () => server.close() });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const upgraded = new Promise<Awaited<ReturnType<typeof upgrade>>>((resolve, reject) =>
      server.once('connection', (raw) => {
        upgrade(raw).then(resolve, reject);
      }),
    );
    const client = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: pem('ca.pem'), ...clientCert('client') });
    cleanup.push(client);
    const r = await upgraded;
    cleanup.push(r.transport.input);
    expect(r.transport.input).toBe(r.transport.output);
    expect(r.info).toEqual({
      cipherSuite: expect.stringMatching(/^TLS_/),
      version: 'TLS1.3',
      negotiatedProtocol: '',
      negotiatedProtocolIsMutual: true,
      commonName: 'good-client',
    });
  });
});

describe('client auth policies', () => {
  test("'' (nsqd's default): no client certificate is asked for, none is needed", async () => {
    const ctx = serverTls();
    const none = await handshake(ctx, {});
    if (!none.server.ok) throw none.server.error;
    expect(peerCommonName(none.server.value)).toBe('');
    // a client that has a certificate is not asked for it
    const withCert = await handshake(ctx, clientCert('rogue'));
    if (!withCert.server.ok) throw withCert.server.error;
    expect(peerCommonName(withCert.server.value)).toBe('');
  });

  test("'require': any certificate, even self-signed, but one is needed", async () => {
    const ctx = serverTls({ tlsClientAuthPolicy: 'require' });
    const rogue = await handshake(ctx, clientCert('rogue'));
    if (!rogue.server.ok || !rogue.client.ok) throw new Error('rogue certificate should pass "require"');
    expect(peerCommonName(rogue.server.value)).toBe('rogue');
    await pingPong(rogue.server.value, rogue.client.value);

    const good = await handshake(ctx, clientCert('client'));
    if (!good.server.ok) throw good.server.error;
    expect(peerCommonName(good.server.value)).toBe('good-client');

    const none = await handshake(ctx, {});
    expectRefused(none, 'E_TLS_NO_CLIENT_CERT');
    await clientIsDropped(none);
  });

  test("'require-verify': only a certificate that chains to --tls-root-ca-file", async () => {
    const ctx = serverTls({ tlsClientAuthPolicy: 'require-verify' });
    const good = await handshake(ctx, clientCert('client'));
    if (!good.server.ok || !good.client.ok) throw new Error('CA-signed certificate should pass "require-verify"');
    expect(peerCommonName(good.server.value)).toBe('good-client');
    await pingPong(good.server.value, good.client.value);

    const rogue = await handshake(ctx, clientCert('rogue'));
    expectRefused(rogue, 'E_TLS_CLIENT_CERT_UNTRUSTED');
    await clientIsDropped(rogue);

    const none = await handshake(ctx, {});
    expectRefused(none, 'E_TLS_NO_CLIENT_CERT');
    await clientIsDropped(none);
  });

  test("'require-verify' without --tls-root-ca-file verifies against the system roots (our CA is not one)", async () => {
    const ctx = serverTls({ tlsClientAuthPolicy: 'require-verify', tlsRootCaFile: '' });
    const good = await handshake(ctx, clientCert('client'));
    expectRefused(good, 'E_TLS_CLIENT_CERT_UNTRUSTED');
    await clientIsDropped(good);
  });
});
