// AUTH and authorization against a real HTTP auth server on 127.0.0.1: the request nsqd sends,
// nsqd's response and error frames, ttl expiry and refresh on a fake clock, anchored patterns,
// every configured address tried, and bad answers failing closed.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type net from 'node:net';
import { errorData, type ProtocolError } from '../../wire/nsq-v2-frames';
import {
  AuthClient,
  AuthConfigError,
  ConnectionAuth,
  authQueryString,
  authenticator,
  remoteIpOf,
  type AuthOptions,
  type AuthPeer,
} from '../../shard/tcp/auth';
import { compilePattern, parseAuthState } from '../../shard/tcp/auth-answer';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

type Answer = { status?: number; body: string | object; delayMs?: number } | 'hang';

/** A small auth server whose answer each test sets; it records every request. */
class AuthServer {
  readonly seen: Seen[] = [];
  answer: Answer = { body: {} };
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
      const a = this.answer;
      if (a === 'hang') return;
      const send = (): void => {
        res.writeHead(a.status ?? 200, { 'content-type': 'application/json' });
        res.end(typeof a.body === 'string' ? a.body : JSON.stringify(a.body));
      };
      if (a.delayMs) setTimeout(send, a.delayMs);
      else send();
    });
  });
  address = '';

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.address = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function deadAddress(): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

const ALICE = {
  ttl: 60,
  identity: 'alice',
  identity_url: 'https://example.com/alice',
  authorizations: [
    { topic: 'orders', channels: ['archive', 'billing.*'], permissions: ['subscribe'] },
    { topic: 'orders', channels: ['.*'], permissions: ['publish'] },
  ],
};

let server: AuthServer;
let now = 0;
const clients: AuthClient[] = [];
const peer: AuthPeer = { remoteIp: '10.1.2.3', tls: false, commonName: '' };

function client(over: Partial<AuthOptions> = {}): AuthClient {
  const c = new AuthClient({ addresses: [server.address], now: () => now, random: () => 0, ...over });
  clients.push(c);
  return c;
}

function connection(c: AuthClient = client(), who: () => AuthPeer = () => peer): ConnectionAuth {
  return new ConnectionAuth(c, who);
}

/** The frame data an error would be sent as. */
const frame = (e: ProtocolError | null): string | null => (e === null ? null : errorData(e.code, e.text));

async function authorize(conn: ConnectionAuth, command: 'SUB' | 'PUB' | 'MPUB' | 'DPUB', topic: string, channel = ''): Promise<string | null> {
  return frame(await conn.authorize(command, topic, channel));
}

async function authed(conn: ConnectionAuth, secret = 'letmein'): Promise<string> {
  const r = await conn.auth(Buffer.from(secret));
  if (!r.ok) throw new Error(`AUTH failed: ${errorData(r.error.code, r.error.text)} ${r.cause?.message ?? ''}`);
  return r.response;
}

async function authError(conn: ConnectionAuth, secret = 'letmein'): Promise<{ frame: string; fatal: boolean; cause: string }> {
  const r = await conn.auth(Buffer.from(secret));
  if (r.ok) throw new Error('AUTH should have failed');
  return { frame: errorData(r.error.code, r.error.text), fatal: r.error.fatal, cause: r.cause?.message ?? '' };
}

beforeEach(async () => {
  now = 1_000_000;
  server = await new AuthServer().start();
  server.answer = { body: ALICE };
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server.close();
});

describe('the request nsqd sends', () => {
  test('GET /auth with remote_ip, tls, secret and common_name, keys sorted as Go encodes them', async () => {
    const conn = connection(client(), () => ({ remoteIp: '10.1.2.3', tls: true, commonName: 'worker 7' }));
    await authed(conn, 'p@ss/wo rd');
    expect(server.seen).toHaveLength(1);
    const req = server.seen[0];
    expect(req.method).toBe('GET');
    expect(req.url).toBe('/auth?common_name=worker+7&remote_ip=10.1.2.3&secret=p%40ss%2Fwo+rd&tls=true');
    expect(req.headers.accept).toBe('application/vnd.nsq; version=1.0');
  });

  test('the secret goes byte for byte, even when it is not UTF-8', () => {
    expect(authQueryString({ remoteIp: '', tls: false, commonName: '' }, Buffer.from([0xff, 0x00, 0x41, 0x7e]))).toBe(
      'common_name=&remote_ip=&secret=%FF%00A~&tls=false',
    );
  });

  test('--auth-http-request-method post sends the same fields as JSON arrays', async () => {
    await authed(connection(client({ method: 'post' })), 'se<cr>et');
    const req = server.seen[0];
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/auth');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.body).toBe('{"common_name":[""],"remote_ip":["10.1.2.3"],"secret":["se\\u003ccr\\u003eet"],"tls":["false"]}');
  });

  test('an address with "://" is used as given', async () => {
    await authed(connection(client({ addresses: [`http://${server.address}/custom/path`] })));
    expect(server.seen[0].url).toMatch(/^\/custom\/path\?common_name=/);
  });

  test('addresses that are not http(s) are configuration errors', () => {
    expect(() => new AuthClient({ addresses: ['ftp://127.0.0.1/auth'] })).toThrow(AuthConfigError);
    expect(() => new AuthClient({ addresses: ['not a host:port'] })).toThrow(AuthConfigError);
  });

  test('the peer is read at every query (a TLS upgrade between AUTH and a refresh is seen)', async () => {
    let who: AuthPeer = { remoteIp: '10.1.2.3', tls: false, commonName: '' };
    const conn = connection(client(), () => who);
    await authed(conn);
    who = { remoteIp: '10.1.2.3', tls: true, commonName: 'svc' };
    now += 61_000;
    expect(await authorize(conn, 'PUB', 'orders')).toBeNull();
    expect(server.seen[1].url).toBe('/auth?common_name=svc&remote_ip=10.1.2.3&secret=letmein&tls=true');
  });
});

describe('AUTH', () => {
  test('allowed: nsqd\'s response JSON, and the connection is authed', async () => {
    const conn = connection();
    expect(conn.authed).toBe(false);
    expect(await authed(conn)).toBe('{"identity":"alice","identity_url":"https://example.com/alice","permission_count":2}');
    expect(conn.authed).toBe(true);
    expect(conn.identity).toBe('alice');
    expect(conn.identityUrl).toBe('https://example.com/alice');
  });

  test('the response is escaped as Go\'s json.Marshal escapes it', async () => {
    server.answer = { body: { ...ALICE, identity: '<b>Tom & Jerry</b>' } };
    expect(await authed(connection())).toBe(
      '{"identity":"\\u003cb\\u003eTom \\u0026 Jerry\\u003c/b\\u003e","identity_url":"https://example.com/alice","permission_count":2}',
    );
  });

  test('denied: an answer without authorizations is E_UNAUTHORIZED', async () => {
    server.answer = { body: { ttl: 60, identity: 'mallory', authorizations: [] } };
    const conn = connection();
    expect(await authError(conn)).toEqual({ frame: 'E_UNAUTHORIZED AUTH no authorizations found', fatal: true, cause: '' });
    expect(conn.authed).toBe(false);
  });

  test('AUTH twice is E_INVALID; AUTH with auth off is E_AUTH_DISABLED', async () => {
    const conn = connection();
    await authed(conn);
    expect((await authError(conn)).frame).toBe('E_INVALID AUTH already set');
    const off = connection(client({ addresses: [] }));
    expect(await authError(off)).toEqual({ frame: 'E_AUTH_DISABLED AUTH disabled', fatal: true, cause: '' });
    expect(server.seen).toHaveLength(1);
  });

  test('auth server down: E_AUTH_FAILED, the reason only in `cause`', async () => {
    const dead = await deadAddress();
    const r = await authError(connection(client({ addresses: [dead] })));
    expect(r.frame).toBe('E_AUTH_FAILED AUTH failed');
    expect(r.fatal).toBe(true);
    expect(r.cause).toContain(`failed to auth against http://${dead}/auth - `);
  });

  test('every configured address is tried, from a random one on', async () => {
    const dead = await deadAddress();
    const both = [dead, server.address];
    await authed(connection(client({ addresses: both, random: () => 0 })));
    expect(server.seen).toHaveLength(1);
    // starting at the live one, the dead one is never asked
    await authed(connection(client({ addresses: both, random: () => 0.99 })));
    expect(server.seen).toHaveLength(2);
    const dead2 = await deadAddress();
    const r = await authError(connection(client({ addresses: [dead, dead2] })));
    expect(r.cause).toMatch(new RegExp(`failed to auth against http://${dead}/auth - .*; failed to auth against http://${dead2}/auth - `));
  });

  test.each<[string, Answer, RegExp]>([
    ['malformed JSON', { body: '{"ttl": 60, "authorizations": [' }, /invalid JSON/],
    ['a JSON array', { body: '[]' }, /not a JSON object/],
    ['HTTP 403', { status: 403, body: { message: 'no' } }, /got response 403/],
    ['HTTP 500', { status: 500, body: 'oops' }, /got response 500 "oops"/],
    ['no ttl', { body: { authorizations: ALICE.authorizations } }, /invalid TTL 0 \(must be >0\)/],
    ['ttl 0', { body: { ...ALICE, ttl: 0 } }, /invalid TTL 0/],
    ['negative ttl', { body: { ...ALICE, ttl: -5 } }, /invalid TTL -5/],
    ['fractional ttl', { body: { ...ALICE, ttl: 1.5 } }, /ttl is not an integer/],
    ['string ttl', { body: { ...ALICE, ttl: '60' } }, /ttl is not an integer/],
    ['unknown permission', { body: { ttl: 60, authorizations: [{ topic: '.*', channels: ['.*'], permissions: ['admin'] }] } }, /unknown permission admin/],
    ['a topic that does not compile', { body: { ttl: 60, authorizations: [{ topic: '(', channels: ['.*'], permissions: ['publish'] }] } }, /unable to compile topic "\("/],
    ['a channel that does not compile', { body: { ttl: 60, authorizations: [{ topic: '.*', channels: ['[a-'], permissions: ['publish'] }] } }, /unable to compile channel/],
    ['a Go-only construct', { body: { ttl: 60, authorizations: [{ topic: '\\pL+', channels: ['.*'], permissions: ['publish'] }] } }, /unable to compile topic/],
    ['authorizations not an array', { body: { ttl: 60, authorizations: { topic: '.*' } } }, /authorizations is not an array/],
    ['identity not a string', { body: { ...ALICE, identity: 7 } }, /identity is not a string/],
  ])('%s fails closed with E_AUTH_FAILED', async (_what, answer, cause) => {
    server.answer = answer;
    const conn = connection();
    const r = await authError(conn);
    expect(r.frame).toBe('E_AUTH_FAILED AUTH failed');
    expect(r.cause).toMatch(cause);
    expect(conn.authed).toBe(false);
  });

  test('an answer over 1 MiB is refused', async () => {
    server.answer = { body: { ...ALICE, identity: 'x'.repeat(1024 * 1024) } };
    expect((await authError(connection())).cause).toMatch(/larger than/);
  });

  test('a server that never answers times out (--http-client-request-timeout)', async () => {
    server.answer = 'hang';
    const started = Date.now();
    const r = await authError(connection(client({ requestTimeoutMs: 200 })));
    expect(r.frame).toBe('E_AUTH_FAILED AUTH failed');
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

describe('authorization (CheckAuth)', () => {
  test('before AUTH: E_AUTH_FIRST; with auth off: always allowed', async () => {
    expect(await authorize(connection(), 'PUB', 'orders')).toBe('E_AUTH_FIRST AUTH required before PUB');
    expect(await authorize(connection(), 'SUB', 'orders', 'archive')).toBe('E_AUTH_FIRST AUTH required before SUB');
    expect(connection(client({ addresses: [] })).authorize('SUB', 'anything', 'at-all')).toBeNull();
  });

  test('allow and deny with nsqd\'s error texts; a fresh answer decides synchronously', async () => {
    const conn = connection();
    await authed(conn);
    expect(conn.authorize('SUB', 'orders', 'archive')).toBeNull();
    expect(conn.authorize('SUB', 'orders', 'billing-eu')).toBeNull();
    expect(conn.authorize('PUB', 'orders', '')).toBeNull();
    expect(conn.authorize('MPUB', 'orders', '')).toBeNull();
    expect(frame(conn.authorize('SUB', 'orders', 'other') as ProtocolError)).toBe('E_UNAUTHORIZED AUTH failed for SUB on "orders" "other"');
    expect(frame(conn.authorize('DPUB', 'payments', '') as ProtocolError)).toBe('E_UNAUTHORIZED AUTH failed for DPUB on "payments" ""');
    const err = conn.authorize('SUB', 'payments', 'archive') as ProtocolError;
    expect(err.fatal).toBe(true);
    expect(err.command).toBe('SUB');
    expect(server.seen).toHaveLength(1);
  });

  test('patterns are anchored: "orders" does not grant "orders_private" (nsqd\'s unanchored regexps would)', async () => {
    server.answer = {
      body: {
        ttl: 60,
        authorizations: [
          { topic: 'orders', channels: ['archive'], permissions: ['subscribe', 'publish'] },
          { topic: 'events\\..*', channels: ['.*'], permissions: ['publish'] },
        ],
      },
    };
    const conn = connection();
    await authed(conn);
    expect(await authorize(conn, 'SUB', 'orders', 'archive')).toBeNull();
    expect(await authorize(conn, 'SUB', 'orders_private', 'archive')).toBe('E_UNAUTHORIZED AUTH failed for SUB on "orders_private" "archive"');
    expect(await authorize(conn, 'SUB', 'old_orders', 'archive')).not.toBeNull();
    expect(await authorize(conn, 'SUB', 'orders', 'archive2')).not.toBeNull();
    expect(await authorize(conn, 'PUB', 'events.signup')).toBeNull();
    expect(await authorize(conn, 'PUB', 'events')).not.toBeNull();
    expect(await authorize(conn, 'PUB', 'xevents.signup')).not.toBeNull();
    // as in nsqd, publishing matches the channel patterns against "": "archive" does not match it
    expect(await authorize(conn, 'PUB', 'orders')).toBe('E_UNAUTHORIZED AUTH failed for PUB on "orders" ""');
  });

  test('permissions are separate: a subscribe grant does not allow publishing, nor the reverse', async () => {
    server.answer = {
      body: {
        ttl: 60,
        authorizations: [
          { topic: 'reads', channels: ['.*'], permissions: ['subscribe'] },
          { topic: 'writes', channels: ['.*'], permissions: ['publish'] },
        ],
      },
    };
    const conn = connection();
    await authed(conn);
    expect(await authorize(conn, 'SUB', 'reads', 'c')).toBeNull();
    expect(await authorize(conn, 'PUB', 'reads')).not.toBeNull();
    expect(await authorize(conn, 'PUB', 'writes')).toBeNull();
    expect(await authorize(conn, 'SUB', 'writes', 'c')).not.toBeNull();
    expect(await conn.isAuthorized('reads', 'c', 'subscribe')).toBe(true);
    expect(await conn.isAuthorized('reads', null, 'subscribe')).toBe(false);
    expect(await conn.isAuthorized('writes', null, 'publish')).toBe(true);
  });

  test('ttl expiry: fresh until ttl has passed, then asked again before deciding', async () => {
    const conn = connection();
    await authed(conn);
    now += 60_000; // exactly at expiry: nsqd's Expires.Before(now) is still false
    expect(conn.authorize('PUB', 'orders', '')).toBeNull();
    expect(server.seen).toHaveLength(1);

    server.answer = { body: { ...ALICE, authorizations: [ALICE.authorizations[0]] } }; // publish revoked
    now += 1;
    const pending = conn.authorize('PUB', 'orders', '');
    expect(pending).toBeInstanceOf(Promise);
    expect(frame(await pending)).toBe('E_UNAUTHORIZED AUTH failed for PUB on "orders" ""');
    expect(server.seen).toHaveLength(2);
    // the new answer has its own ttl
    expect(conn.authorize('SUB', 'orders', 'archive')).toBeNull();
    expect(conn.authorize('PUB', 'orders', '')).not.toBeNull();
    expect(server.seen).toHaveLength(2);
  });

  test('concurrent checks on an expired answer share one query', async () => {
    const conn = connection();
    await authed(conn);
    now += 120_000;
    server.answer = { body: ALICE, delayMs: 50 };
    const results = await Promise.all([
      conn.authorize('PUB', 'orders', ''),
      conn.authorize('SUB', 'orders', 'archive'),
      conn.isAuthorized('orders', 'archive', 'subscribe'),
    ]);
    expect(results).toEqual([null, null, true]);
    expect(server.seen).toHaveLength(2);
  });

  test('a refresh that fails is E_AUTH_FAILED for that command; the reason goes to the log only', async () => {
    const conn = connection();
    await authed(conn);
    now += 61_000;
    server.answer = { status: 500, body: 'down for maintenance' };
    const logged: Error[] = [];
    const err = (await conn.authorize('SUB', 'orders', 'archive', (e) => logged.push(e))) as ProtocolError;
    expect(frame(err)).toBe('E_AUTH_FAILED AUTH failed');
    expect(err.command).toBe('SUB');
    expect(err.fatal).toBe(true);
    expect(logged[0].message).toMatch(/got response 500/);
    await expect(conn.isAuthorized('orders', 'archive', 'subscribe')).rejects.toThrow(/got response 500/);
    // the auth server is back: the next check asks again and passes
    server.answer = { body: ALICE };
    expect(await authorize(conn, 'SUB', 'orders', 'archive')).toBeNull();
  });

  test('the Authenticator seam (client-auth.ts) sees the same decisions', async () => {
    const session = await authenticator(client()).authenticate({ secret: 'letmein', remoteIp: '10.1.2.3', tls: false, commonName: '' });
    expect(session.identity).toBe('alice');
    expect(session.permissionCount).toBe(2);
    expect(session.allows('orders', 'archive')).toBe(true);
    expect(session.allows('orders', '')).toBe(true); // '' = publish
    expect(session.allows('orders_private', '')).toBe(false);
    expect(session.expired()).toBe(false);
    now += 60_001;
    expect(session.expired()).toBe(true);
  });
});

describe('patterns (Go RE2 syntax, anchored)', () => {
  test.each<[string, string, boolean]>([
    ['orders', 'orders', true],
    ['orders', 'orders_private', false],
    ['orders', 'my_orders', false],
    ['orders.*', 'orders_private', true],
    ['a|b', 'a', true],
    ['a|b', 'ab', false],
    ['', '', true],
    ['', 'x', false],
    ['(?i)Orders', 'ORDERS', true],
    ['\\Aorders\\z', 'orders', true],
    ['(?P<kind>in|out)bound', 'inbound', true],
    ['[]x]+', ']x]', true],
    ['[^]x]+', 'abc', true],
    ['orders\\-v2', 'orders-v2', true],
    ['.*#ephemeral', 'tmp#ephemeral', true],
  ])('%j vs %j → %s', (pattern, name, matches) => {
    expect(compilePattern(pattern).test(name)).toBe(matches);
  });

  test.each(['(?=a)a', '(?!a)b', '(?<=a)b', '(a)\\1', '\\Qa.b\\E', '\\pL', '[[:alpha:]]', '\\x{41}', '(?U)a+', 'a\\'])(
    '%j is refused rather than read differently',
    (pattern) => {
      expect(() => compilePattern(pattern)).toThrow();
    },
  );

  test('an answer is checked before it is trusted, and null fields read as Go reads them', () => {
    const s = parseAuthState('{"ttl": 10, "identity": null, "authorizations": [null, {"topic": "t", "channels": null, "permissions": ["publish"]}]}', 0);
    expect(s.identity).toBe('');
    expect(s.authorizations).toHaveLength(2); // both count towards permission_count, as in nsqd
    expect(s.allows('t', null, 'publish')).toBe(false); // no channel pattern matches ""
    expect(s.expiresAt).toBe(10_000);
  });
});

test('remote_ip: the peer address as Go reports it', () => {
  const sock = (remoteAddress: string | undefined): net.Socket => ({ remoteAddress }) as net.Socket;
  expect(remoteIpOf(sock('::ffff:10.0.0.7'))).toBe('10.0.0.7');
  expect(remoteIpOf(sock('192.168.1.2'))).toBe('192.168.1.2');
  expect(remoteIpOf(sock('::1'))).toBe('::1');
  expect(remoteIpOf(sock(undefined))).toBe('');
});
