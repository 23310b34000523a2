// openapi.yaml against the gateway that serves it: the document is well formed (refs resolve,
// path parameters declared, operation ids unique, every 429 says Retry-After), every route the
// routers serve is documented and every documented operation is served, answering as documented.
// The request metrics' route table is checked against the same document, so adding a route in
// one place and not the others fails here.

import http from 'node:http';
import type { Express } from 'express';
import { createGateway, Gateway } from '../../gateway/app';
import { ERRORS } from '../../gateway/errors';
import { ROUTE_TEMPLATES } from '../../gateway/http-metrics';
import { InProcessShard, startInProcessShard } from '../helpers/gateway';
import { expectDocumented, openapiDoc } from '../helpers/openapi';
import { parsePrometheus } from '../helpers/prom';

type Obj = Record<string, any>;
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
const paths = openapiDoc.paths as Record<string, Obj>;

function resolve(ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`not a local ref: ${ref}`);
  let node: unknown = openapiDoc;
  for (const k of ref.slice(2).split('/')) {
    if (node === null || typeof node !== 'object' || !(k in node)) throw new Error(`${ref} does not resolve`);
    node = (node as Obj)[k];
  }
  return node;
}
const deref = (n: Obj): Obj => (typeof n.$ref === 'string' && n.$ref.startsWith('#/') ? (resolve(n.$ref) as Obj) : n);

const operations = (): [string, string, Obj][] =>
  Object.entries(paths).flatMap(([p, item]) => METHODS.filter((m) => item[m]).map((m): [string, string, Obj] => [p, m, item[m]]));

/** Express route paths and the methods they really serve (app.all's 405 answers are not serving). */
function expressRoutes(app: Express): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const walk = (stack: Obj[]) => {
    for (const layer of stack) {
      if (layer.route) {
        const p = String(layer.route.path).replace(/:(\w+)/g, '{$1}');
        const served = (layer.route.stack as Obj[]).map((l) => l.method).filter((m): m is string => typeof m === 'string');
        if (!out.has(p)) out.set(p, new Set());
        // app.all()/router.all() (the 405 answers, GET fall-through) registers every method Node knows
        if (served.length < http.METHODS.length) for (const m of served) out.get(p)!.add(m);
      } else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as unknown as { router: { stack: Obj[] } }).router.stack);
  return out;
}

describe('openapi.yaml is well formed', () => {
  it('has an OpenAPI 3.1 header, and every local $ref resolves', () => {
    expect(String(openapiDoc.openapi)).toMatch(/^3\.1\.\d+$/);
    expect(openapiDoc.info?.title).toEqual(expect.any(String));
    expect(openapiDoc.info?.version).toEqual(expect.any(String));
    const walk = (n: unknown): void => {
      if (Array.isArray(n)) n.forEach(walk);
      else if (n && typeof n === 'object')
        for (const [k, v] of Object.entries(n)) {
          if (k === '$ref' && typeof v === 'string' && v.startsWith('#')) resolve(v);
          else walk(v);
        }
    };
    walk(openapiDoc);
  });

  it.each(operations())('%s %s: declares its path parameters, an operation id, known security and responses', (p, _m, op) => {
    const inPath = [...p.matchAll(/\{(\w+)\}/g)].map((x) => x[1]).sort();
    const params = ((op.parameters ?? []) as Obj[]).map(deref);
    const declared = params.filter((x) => x.in === 'path');
    expect(declared.map((x) => x.name).sort()).toEqual(inPath);
    for (const d of declared) expect(d.required).toBe(true);
    expect(op.operationId).toMatch(/^[a-zA-Z]+$/);
    for (const req of (op.security ?? []) as Obj[]) for (const name of Object.keys(req)) expect(openapiDoc.components.securitySchemes[name]).toBeDefined();
    const responses = Object.entries(op.responses ?? {});
    expect(responses.length).toBeGreaterThan(0);
    for (const [status, r] of responses) {
      expect(status).toMatch(/^([1-5]\d\d|default)$/);
      const resolved = deref(r as Obj);
      expect(resolved.description).toEqual(expect.any(String));
      if (status === '429') expect(resolved.headers?.['Retry-After']).toBeDefined();
    }
  });

  it('gives every operation its own id', () => {
    const ids = operations().map(([, , op]) => op.operationId as string);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('names every code of the error catalogue', () => {
    const r = openapiDoc.components.responses as Obj;
    const text = `${r.error.description} ${r.rateLimited.description}`;
    const missing = Object.keys(ERRORS).filter((code) => !new RegExp(`\\b${code}\\b`).test(text));
    expect(missing).toEqual([]);
  });

  it('documents 429 with Retry-After on publishing, consuming and receipts', () => {
    const limited = ['/v1/topics/{topic}/messages', '/v1/topics/{topic}/batch', '/v1/webhooks/{topic}', '/v1/topics/{topic}/channels/{channel}/messages', '/v1/receipts/ack', '/v1/receipts/requeue', '/v1/receipts/touch'];
    for (const p of limited) expect(deref(paths[p].post.responses['429']).headers['Retry-After']).toBeDefined();
    expect(deref(paths['/v1/topics/{topic}/channels/{channel}/stream'].get.responses['429']).headers['Retry-After']).toBeDefined();
  });
});

describe('openapi.yaml and the routes the gateway serves', () => {
  let shard: InProcessShard;
  let gw: Gateway;
  let base: string;
  const topic = 'oa-topic';
  const channel = 'oa-ch';

  beforeAll(async () => {
    shard = await startInProcessShard(['--node-id', '1']);
    gw = createGateway({ httpAddress: '127.0.0.1:0', shardHttpAddresses: [shard.http], consume: { receiptSecrets: ['openapi-test-secret-0123456789'] } });
    base = (await gw.start()).http;
  }, 30_000);

  afterAll(async () => {
    await gw?.close();
    await shard?.close();
  });

  /** One request; an event stream is hung up on once its headers arrive. */
  function send(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Obj; text: string }> {
    return new Promise((done, fail) => {
      const req = http.request(`http://${base}${path}`, { method, headers: { ...headers, ...(body ? { 'content-length': String(Buffer.byteLength(body)) } : {}) } }, (res) => {
        const answer = { status: res.statusCode ?? 0, headers: res.headers as Obj, text: '' };
        if (String(res.headers['content-type']).startsWith('text/event-stream')) {
          req.destroy();
          return done(answer);
        }
        res.setEncoding('utf8');
        res.on('data', (d: string) => (answer.text += d));
        res.on('end', () => done(answer));
      });
      req.on('error', (err) => (req.destroyed ? undefined : fail(err)));
      req.end(body);
    });
  }

  const sample: Record<string, () => string> = {
    topic: () => topic,
    channel: () => channel,
    action: () => 'pause',
    shard: () => shard.http,
    endpoint: () => 'stats',
    file: () => 'admin.js',
  };
  const fill = (template: string) => template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(sample[name]()));
  const query: Record<string, string> = {
    '/v1/topics/{topic}/channels/{channel}/messages': '?wait_ms=0',
    '/v1/admin/topics/{topic}/tombstone': '?shard=' + encodeURIComponent('127.0.0.1:1'),
    '/v1/receipts/ack': '?receipt=not-a-receipt',
    '/v1/receipts/requeue': '?receipt=not-a-receipt',
    '/v1/receipts/touch': '?receipt=not-a-receipt',
  };

  it('documents exactly the paths of the request metrics route table', () => {
    expect(Object.keys(paths).sort()).toEqual([...ROUTE_TEMPLATES].sort());
  });

  it('documents every route and method the Express app and admin router serve', () => {
    const served = expressRoutes(gw.app);
    expect(served.size).toBeGreaterThan(15);
    for (const [p, methods] of served) {
      expect({ path: p, documented: Boolean(paths[p]) }).toEqual({ path: p, documented: true });
      for (const m of methods) expect({ path: p, method: m, documented: Boolean(paths[p][m]) }).toEqual({ path: p, method: m, documented: true });
    }
  });

  it('serves every documented operation, answering as documented, and refuses undocumented methods', async () => {
    // something to read: a topic with a message and a channel
    expect((await send('POST', `/v1/topics/${topic}/messages`, 'hello')).status).toBe(200);
    expect((await send('POST', `/v1/admin/topics/${topic}/channels/${channel}/create`)).status).toBe(200);

    for (const [template, method] of operations()) {
      const body = method === 'put' ? JSON.stringify({ max_attempts: 5 }) : method === 'post' && !query[template] ? '[{"body":"x"}]' : undefined;
      const headers: Record<string, string> = body ? { 'content-type': 'application/json' } : {};
      const r = await send(method.toUpperCase(), fill(template) + (query[template] ?? ''), body, headers);
      const where = `${method.toUpperCase()} ${template} → ${r.status} ${r.text.slice(0, 200)}`;
      // not a router miss: a served path never answers the catch-all NOT_FOUND or 405
      const code = r.headers['content-type']?.startsWith('application/json') && r.text ? (JSON.parse(r.text) as Obj).error?.code : undefined;
      expect({ where, miss: r.status === 405 || code === 'NOT_FOUND' }).toEqual({ where, miss: false });
      expect(r.status).toBeLessThan(500);
      expectDocumented(method, template, r);
    }

    for (const [template, item] of Object.entries(paths)) {
      for (const m of ['get', 'post', 'put', 'delete'].filter((x) => !item[x])) {
        const r = await send(m.toUpperCase(), fill(template), m === 'get' ? undefined : '', {});
        const code = r.text.startsWith('{') ? (JSON.parse(r.text) as Obj).error?.code : undefined;
        const where = `${m.toUpperCase()} ${template} → ${r.status}`;
        expect({ where, refused: r.status === 405 || code === 'NOT_FOUND' }).toEqual({ where, refused: true });
      }
    }

    // and the request metrics put each of those requests under its template, none under "unmatched"
    const text = (await send('GET', '/metrics')).text;
    const routes = new Set(parsePrometheus(text).samples.filter((s) => s.name === 'sluice_gateway_http_requests_total').map((s) => s.labels.route));
    expect([...routes].sort()).toEqual([...ROUTE_TEMPLATES].sort());
  }, 60_000);
});
