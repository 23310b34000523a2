// One to-http delivery against a local HTTP server on 127.0.0.1: statuses, redirects (followed,
// re-checked, turned into GET where browsers do), the deadline, GET's "%s", and targets refused
// by the address policy before any connection — literal, resolved, or reached by a redirect.

import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { anyAddress, checkTarget, deliver, DeliveryError, guardedLookup, publicOnly, type AddressPolicy, type DeliveryOptions } from '../../tools/http-delivery';

interface Seen {
  method: string;
  url: string;
  body: string;
  type: string | undefined;
}

describe('deliver', () => {
  let server: http.Server;
  let base: string;
  let port: number;
  const seen: Seen[] = [];
  const onlyThisHost: AddressPolicy = (ip) => ip === '127.0.0.1';
  const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
  const opts = (over: Partial<DeliveryOptions> = {}): DeliveryOptions => ({
    timeoutMs: 2000,
    contentType: 'application/octet-stream',
    headers: {},
    allowed: onlyThisHost,
    maxRedirects: 3,
    agents,
    ...over,
  });

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, body: Buffer.concat(chunks).toString(), type: req.headers['content-type'] });
        const to = (status: number, location: string) => res.writeHead(status, { location }).end();
        const path = req.url!.split('?')[0];
        if (path === '/ok') res.writeHead(204).end();
        else if (path === '/fail') res.writeHead(503).end('no');
        else if (path === '/keep') to(307, '/ok');
        else if (path === '/see-other') to(303, '/ok');
        else if (path === '/moved') to(301, `http://127.0.0.1:${port}/ok`);
        else if (path === '/to-private') to(302, `http://127.0.0.2:${port}/ok`);
        else if (path === '/to-name') to(302, `http://localhost:${port}/ok`);
        else if (path === '/to-ftp') to(302, 'ftp://127.0.0.1/x');
        else if (path === '/loop') to(302, '/loop');
        else if (path === '/slow') setTimeout(() => res.end(), 3000).unref();
        else res.writeHead(404).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    agents.http.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  beforeEach(() => (seen.length = 0));

  const run = (method: 'GET' | 'POST', url: string, body = 'hello', o = opts()) => deliver({ method, url }, Buffer.from(body), o, guardedLookup(o.allowed));
  const code = async (p: Promise<unknown>): Promise<string> => {
    try {
      await p;
      return 'OK';
    } catch (err) {
      return err instanceof DeliveryError ? err.code : `not a DeliveryError: ${String(err)}`;
    }
  };

  it('POSTs the body with its content type; any 2xx is success', async () => {
    expect(await run('POST', `${base}/ok`, 'the body')).toBe(204);
    expect(seen).toEqual([{ method: 'POST', url: '/ok', body: 'the body', type: 'application/octet-stream' }]);
  });

  it('a non-2xx answer is an HTTP_STATUS failure carrying the status', async () => {
    await expect(run('POST', `${base}/fail`)).rejects.toMatchObject({ code: 'HTTP_STATUS', status: 503 });
  });

  it('GET replaces every %s with the URL-encoded body', async () => {
    await run('GET', `${base}/ok?m=%s&again=%s`, 'a b&c');
    expect(seen).toEqual([{ method: 'GET', url: '/ok?m=a%20b%26c&again=a%20b%26c', body: '', type: undefined }]);
  });

  it('follows redirects: 307 keeps the POST and its body, 303 and a POST’s 301 become GETs', async () => {
    await run('POST', `${base}/keep`, 'kept');
    expect(seen.map((s) => `${s.method} ${s.url} ${s.body}`)).toEqual(['POST /keep kept', 'POST /ok kept']);
    seen.length = 0;
    await run('POST', `${base}/see-other`, 'dropped');
    await run('POST', `${base}/moved`, 'dropped');
    expect(seen.map((s) => `${s.method} ${s.url} ${s.body}`)).toEqual(['POST /see-other dropped', 'GET /ok ', 'POST /moved dropped', 'GET /ok ']);
  });

  it('refuses a redirect to a forbidden address without connecting to it', async () => {
    expect(await code(run('POST', `${base}/to-private`))).toBe('FORBIDDEN_TARGET');
    expect(seen.map((s) => s.url)).toEqual(['/to-private']);
  });

  it('refuses a redirect to a name that resolves to a forbidden address', async () => {
    // the policy allows the first target (the literal 127.0.0.1) and nothing after it
    let first = true;
    const o = opts({ allowed: () => first && !(first = false) });
    expect(await code(run('POST', `${base}/to-name`, 'x', o))).toBe('FORBIDDEN_TARGET');
    expect(seen.map((s) => s.url)).toEqual(['/to-name']);
  });

  it('refuses redirects to other schemes, and endless ones', async () => {
    expect(await code(run('GET', `${base}/to-ftp`))).toBe('BAD_REDIRECT');
    expect(await code(run('GET', `${base}/loop`))).toBe('TOO_MANY_REDIRECTS');
    expect(seen.filter((s) => s.url === '/loop')).toHaveLength(4); // the request and 3 redirects
  });

  it('gives up at the deadline', async () => {
    const started = Date.now();
    expect(await code(run('GET', `${base}/slow`, '', opts({ timeoutMs: 200 })))).toBe('TIMEOUT');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('by default refuses loopback targets, literal or by name, before connecting', async () => {
    const o = opts({ allowed: publicOnly });
    expect(await code(run('POST', `${base}/ok`, 'x', o))).toBe('FORBIDDEN_TARGET');
    expect(await code(run('POST', `http://localhost:${port}/ok`, 'x', o))).toBe('FORBIDDEN_TARGET');
    expect(await code(run('POST', `http://[::1]:${port}/ok`, 'x', o))).toBe('FORBIDDEN_TARGET');
    expect(seen).toEqual([]);
  });
});

describe('checkTarget (at start-up)', () => {
  it('refuses loopback, private and link-local targets unless every address is allowed', async () => {
    for (const url of ['http://127.0.0.1:1/', 'http://localhost:1/', 'http://[::1]:1/', 'http://10.1.2.3/', 'http://169.254.169.254/latest', 'http://[fd00::1]/', 'http://[::ffff:127.0.0.1]/'])
      await expect(checkTarget(new URL(url), publicOnly)).rejects.toMatchObject({ code: 'FORBIDDEN_TARGET' });
    await expect(checkTarget(new URL('http://127.0.0.1:1/'), anyAddress)).resolves.toBeUndefined();
    await expect(checkTarget(new URL('http://8.8.8.8/'), publicOnly)).resolves.toBeUndefined();
  });
});
