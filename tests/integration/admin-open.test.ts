// An open gateway (no --auth-file) in-process: its admin API answers requests addressed to an IP
// address or localhost, refuses another Host (DNS rebinding) and cross-origin actions, and audits
// actions as "anonymous".

import { Writable } from 'node:stream';
import request from 'supertest';
import winston from 'winston';
import { createGateway, Gateway } from '../../gateway/app';
import { request as undiciRequest } from 'undici';
import { InProcessShard, startGateway, startInProcessShard } from '../helpers/gateway';

let shard: InProcessShard;
let gw: Gateway;
const records: Record<string, unknown>[] = [];
const logger = winston.createLogger({
  format: winston.format.json(),
  transports: [new winston.transports.Stream({ stream: new Writable({ write: (c, _e, cb) => (records.push(JSON.parse(String(c))), cb()) }) })],
});

beforeAll(async () => {
  shard = await startInProcessShard();
  gw = createGateway({ shardHttpAddresses: [shard.http] }, { processMetrics: false, logger });
  await gw.start();
});

afterAll(async () => {
  await gw.close();
  await shard.close();
});

describe('admin API on an open gateway', () => {
  it('answers to an IP address or localhost only', async () => {
    expect((await request(gw.app).get('/v1/admin/topics').set('Host', '127.0.0.1:4180')).status).toBe(200);
    expect((await request(gw.app).get('/v1/admin/topics').set('Host', 'localhost:4180')).status).toBe(200);
    const rebound = await request(gw.app).get('/v1/admin/topics').set('Host', 'attacker.example:4180');
    expect(rebound.status).toBe(403);
    expect(rebound.body.error.code).toBe('FORBIDDEN');
  });

  it('creates a topic where publishing would place it, refusing cross-origin browser requests', async () => {
    const cross = await request(gw.app).post('/v1/admin/topics/open-t/create').set('Host', '127.0.0.1:4180').set('Origin', 'http://127.0.0.1:9999');
    expect(cross.status).toBe(403);
    const same = await request(gw.app).post('/v1/admin/topics/open-t/create').set('Host', '127.0.0.1:4180').set('Origin', 'http://127.0.0.1:4180');
    expect(same.status).toBe(200);
    expect(same.body).toMatchObject({ action: 'topic.create', result: 'ok', steps: [{ target: shard.http, ok: true }] });
    expect(shard.shard.engine.topics.has('open-t')).toBe(true);
    expect(records.find((r) => r.audit === true && r.action === 'topic.create')).toMatchObject({ who: 'anonymous', target: { topic: 'open-t' }, result: 'ok' });
    const bad = await request(gw.app).post('/v1/admin/topics/bad!name/pause').set('Host', '127.0.0.1');
    expect(bad.status).toBe(400);
    expect((await request(gw.app).post('/v1/admin/topics/open-t/explode').set('Host', '127.0.0.1')).status).toBe(404);
    expect((await request(gw.app).get('/v1/admin/topics/open-t/pause').set('Host', '127.0.0.1')).status).toBe(404);
    // a channel for a topic no shard holds: the topic is what is missing
    const orphan = await request(gw.app).post('/v1/admin/topics/nowhere/channels/c/create').set('Host', '127.0.0.1');
    expect(orphan.status).toBe(404);
    expect(orphan.body.error.code).toBe('TOPIC_NOT_FOUND');
  });

  it('caps live viewers (--admin-max-viewers): one more gets 503 TOO_MANY_VIEWERS with Retry-After', async () => {
    const one = await startGateway(['--shard-http-address', shard.http, '--admin-max-viewers', '1']);
    const ac = new AbortController();
    try {
      const first = await undiciRequest(one.url('/v1/admin/events'), { signal: ac.signal });
      expect(first.statusCode).toBe(200);
      const second = await one.call('/v1/admin/events');
      expect(second.status).toBe(503);
      expect(second.json().error.code).toBe('TOO_MANY_VIEWERS');
      expect(Number(second.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      ac.abort();
      first.body.on('error', () => undefined);
      // the slot is free again once the first viewer has gone
      const ac2 = new AbortController();
      const again = await (async () => {
        for (let i = 0; i < 50; i++) {
          const r = await undiciRequest(one.url('/v1/admin/events'), { signal: ac2.signal });
          if (r.statusCode === 200) return r;
          await r.body.dump();
          await new Promise((res) => setTimeout(res, 100));
        }
        return null;
      })();
      expect(again?.statusCode).toBe(200);
      ac2.abort();
      again?.body.on('error', () => undefined);
    } finally {
      ac.abort();
      await one.stop();
    }
  });
});
