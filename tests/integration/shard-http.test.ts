// A real shard process driven over HTTP: nsqd's API with its exact errors, and the lease API.

import net from 'node:net';
import { request } from 'undici';
import { call, ShardProcess, startShard } from '../helpers/shard';
import { waitFor } from '../helpers/process';

let shard: ShardProcess;

beforeAll(async () => {
  shard = await startShard(['--max-msg-size', '1024', '--max-body-size', '4096', '--max-req-timeout', '10s']);
});
afterAll(async () => {
  await shard?.stop();
});

const u = (p: string) => shard.url(p);

async function stats(topic?: string): Promise<any> {
  return (await call(u(`/stats?format=json${topic ? `&topic=${topic}` : ''}`))).json();
}

describe('nsqd-compatible HTTP API', () => {
  it('answers /ping and /info like nsqd, advertising the lease API', async () => {
    const ping = await call(u('/ping'));
    expect(ping.status).toBe(200);
    expect(ping.text).toBe('OK');
    const info = (await call(u('/info'))).json();
    expect(info).toMatchObject({ version: '1.3.0', http_port: Number(shard.http.split(':')[1]) });
    for (const k of ['broadcast_address', 'hostname', 'tcp_port', 'start_time']) expect(info).toHaveProperty(k);
    expect(info.sluice).toMatchObject({ lease_api: '/sluice/lease' });
  });

  it('publishes with /pub and /mpub (lines and binary) and counts them in /stats', async () => {
    expect((await call(u('/pub?topic=h1'), 'POST', 'hello')).text).toBe('OK');
    expect((await call(u('/mpub?topic=h1'), 'POST', 'a\nb\n\nc\n')).text).toBe('OK');
    const parts = [Buffer.from([0, 0, 0, 2]), Buffer.from([0, 0, 0, 3]), Buffer.from('x\ny'), Buffer.from([0, 0, 0, 1]), Buffer.from([0])];
    expect((await call(u('/mpub?topic=h1&binary=true'), 'POST', Buffer.concat(parts))).text).toBe('OK');
    const s = await stats('h1');
    expect(s.topics).toHaveLength(1);
    expect(s.topics[0]).toMatchObject({ topic_name: 'h1', depth: 6, message_count: 6, paused: false, channels: [] });
    for (const k of ['version', 'health', 'start_time', 'producers', 'memory']) expect(s).toHaveProperty(k);
    const text = (await call(u('/stats'))).text;
    expect(text).toMatch(/\[h1\s+\] depth: 6/);
  });

  it('answers bad input with nsqd status codes and error strings, and stays up', async () => {
    const cases: [string, string, string | Buffer | undefined, number, string][] = [
      ['POST', '/pub', 'x', 400, 'MISSING_ARG_TOPIC'],
      ['POST', '/pub?topic=bad!name', 'x', 400, 'INVALID_TOPIC'],
      ['POST', `/pub?topic=${'a'.repeat(65)}`, 'x', 400, 'INVALID_TOPIC'],
      ['POST', '/pub?topic=t', '', 400, 'MSG_EMPTY'],
      ['POST', '/pub?topic=t', 'x'.repeat(1025), 413, 'MSG_TOO_BIG'],
      ['POST', '/pub?topic=t&defer=-1', 'x', 400, 'INVALID_DEFER'],
      ['POST', '/pub?topic=t&defer=abc', 'x', 400, 'INVALID_DEFER'],
      ['POST', '/pub?topic=t&defer=10001', 'x', 400, 'INVALID_DEFER'],
      ['POST', '/mpub?topic=t', 'x'.repeat(4097), 413, 'BODY_TOO_BIG'],
      ['POST', '/mpub?topic=t', 'x'.repeat(1025) + '\n', 413, 'MSG_TOO_BIG'],
      ['POST', '/mpub?topic=t&binary=true', Buffer.from([0, 0, 0, 0]), 413, 'BAD_BODY'],
      ['POST', '/mpub?topic=t&binary=true', Buffer.from([0, 0, 0, 1, 0, 0, 0, 9, 1]), 413, 'BAD_MESSAGE'],
      ['POST', '/topic/empty?topic=nope', undefined, 404, 'TOPIC_NOT_FOUND'],
      ['POST', '/topic/delete?topic=nope', undefined, 404, 'TOPIC_NOT_FOUND'],
      ['POST', '/channel/create?topic=nope&channel=c', undefined, 404, 'TOPIC_NOT_FOUND'],
      ['POST', '/channel/create?topic=h1', undefined, 400, 'MISSING_ARG_CHANNEL'],
      ['POST', '/channel/create?topic=h1&channel=a/b', undefined, 400, 'INVALID_CHANNEL'],
      ['POST', '/channel/pause?topic=h1&channel=nope', undefined, 404, 'CHANNEL_NOT_FOUND'],
      ['GET', '/config/no_such_option', undefined, 400, 'INVALID_OPTION'],
      ['GET', '/nowhere', undefined, 404, 'NOT_FOUND'],
      ['GET', '/pub?topic=t', undefined, 405, 'METHOD_NOT_ALLOWED'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const a = await call(u(path), method, body);
      expect({ path, status: a.status, body: a.json() }).toEqual({ path, status, body: { message: code } });
      expect(a.headers['content-type']).toBe('application/json; charset=utf-8');
    }
    expect((await call(u('/ping'))).text).toBe('OK');
  });

  it('refuses an oversized chunked body as soon as it passes the limit, and closes that connection', async () => {
    const [host, port] = shard.http.split(':');
    const sock = net.connect(Number(port), host);
    let answer = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (answer += d));
    const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
    sock.on('error', () => undefined);
    sock.write('POST /pub?topic=t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    // 2 KiB (over the 1 KiB limit) in 256-byte chunks, then keep the request open
    for (let i = 0; i < 8; i++) sock.write(`100\r\n${'x'.repeat(256)}\r\n`);
    await closed;
    expect(answer).toMatch(/^HTTP\/1.1 413/);
    expect(answer).toContain('{"message":"MSG_TOO_BIG"}');
    expect(answer.toLowerCase()).toContain('connection: close');
    expect((await call(u('/ping'))).text).toBe('OK');
  });

  it('creates, pauses, empties and deletes topics and channels at runtime', async () => {
    expect((await call(u('/topic/create?topic=adm'), 'POST')).status).toBe(200);
    expect((await call(u('/channel/create?topic=adm&channel=c1'), 'POST')).status).toBe(200);
    await call(u('/channel/pause?topic=adm&channel=c1'), 'POST');
    await call(u('/topic/pause?topic=adm'), 'POST');
    let t = (await stats('adm')).topics[0];
    expect(t.paused).toBe(true);
    expect(t.channels[0]).toMatchObject({ channel_name: 'c1', paused: true, depth: 0 });
    await call(u('/topic/unpause?topic=adm'), 'POST');
    await call(u('/pub?topic=adm'), 'POST', 'm');
    t = (await stats('adm')).topics[0];
    expect(t.channels[0]).toMatchObject({ depth: 1, paused: true });
    await call(u('/channel/empty?topic=adm&channel=c1'), 'POST');
    expect((await stats('adm')).topics[0].channels[0].depth).toBe(0);
    await call(u('/channel/unpause?topic=adm&channel=c1'), 'POST');
    expect((await stats('adm')).topics[0].channels[0].paused).toBe(false);
    await call(u('/channel/delete?topic=adm&channel=c1'), 'POST');
    expect((await stats('adm')).topics[0].channels).toEqual([]);
    await call(u('/topic/delete?topic=adm'), 'POST');
    expect((await stats('adm')).topics).toEqual([]);
  });

  it('reads and sets options through /config', async () => {
    expect((await call(u('/config/mem_queue_size'))).json()).toBe(10000);
    expect((await call(u('/config/nsqlookupd_tcp_addresses'))).json()).toEqual([]);
    const put = await call(u('/config/nsqlookupd_tcp_addresses'), 'PUT', '["127.0.0.1:4160"]');
    expect(put.json()).toEqual(['127.0.0.1:4160']);
    expect((await call(u('/config/nsqlookupd_tcp_addresses'), 'PUT', 'not json')).json()).toEqual({ message: 'INVALID_VALUE' });
    expect((await call(u('/config/nsqlookupd_tcp_addresses'), 'PUT', '[]')).status).toBe(200);
  });
});

describe('lease API', () => {
  const L = '/sluice/lease';
  it('pulls with a lease, then finishes, requeues and touches by id + token', async () => {
    await call(u('/channel/create?topic=lt&channel=c'), 'POST').catch(() => undefined);
    await call(u('/topic/create?topic=lt'), 'POST');
    await call(u('/channel/create?topic=lt&channel=c'), 'POST');
    await call(u('/mpub?topic=lt'), 'POST', 'one\ntwo\nthree');
    const pulled = (await call(u(`${L}/pull?topic=lt&channel=c&max=2&lease_ms=5000`), 'POST')).json();
    expect(pulled.messages).toHaveLength(2);
    const [a, b] = pulled.messages;
    expect(Buffer.from(a.body, 'base64').toString()).toBe('one');
    expect(a).toMatchObject({ attempts: 1, lease_ms: 5000 });
    expect(a.id).toMatch(/^[0-9a-f]{16}$/);

    const fin = await call(u(`${L}/finish?topic=lt&channel=c`), 'POST', JSON.stringify({ leases: [{ id: a.id, token: a.token }, { id: b.id, token: 'forged' }] }));
    expect(fin.json().results).toEqual([{ id: a.id, status: 'OK' }, { id: b.id, status: 'STALE_LEASE' }]);
    const again = await call(u(`${L}/finish?topic=lt&channel=c&id=${a.id}&token=${a.token}`), 'POST');
    expect(again.status).toBe(404);
    expect(again.json()).toEqual({ message: 'NOT_IN_FLIGHT' });

    const touched = await call(u(`${L}/touch?topic=lt&channel=c&id=${b.id}&token=${b.token}&lease_ms=20000`), 'POST');
    expect(touched.json().results[0].lease_ms).toBeGreaterThan(19000);

    const req = await call(u(`${L}/requeue?topic=lt&channel=c&id=${b.id}&token=${b.token}&delay_ms=0`), 'POST');
    expect(req.json().results[0].status).toBe('OK');
    const stale = await call(u(`${L}/requeue?topic=lt&channel=c&id=${b.id}&token=${b.token}`), 'POST');
    expect(stale.status).toBe(404);

    const rest = (await call(u(`${L}/pull?topic=lt&channel=c&max=10&lease_ms=5000`), 'POST')).json().messages;
    expect(rest.map((m: any) => Buffer.from(m.body, 'base64').toString()).sort()).toEqual(['three', 'two']);
    const b2 = rest.find((m: any) => m.id === b.id);
    expect(b2.attempts).toBe(2);
    const staleTok = await call(u(`${L}/finish?topic=lt&channel=c&id=${b.id}&token=${b.token}`), 'POST');
    expect(staleTok.status).toBe(409);
    expect(staleTok.json()).toEqual({ message: 'STALE_LEASE' });
  });

  it('long-polls: answers when a message arrives, or empty after the wait', async () => {
    const t0 = Date.now();
    const empty = (await call(u(`${L}/pull?topic=lp&channel=c&wait_ms=300`), 'POST')).json();
    expect(empty.messages).toEqual([]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    const pending = call(u(`${L}/pull?topic=lp&channel=c&wait_ms=10000`), 'POST');
    await waitFor(async () => (await stats('lp')).topics[0]?.channels.length === 1);
    await call(u('/pub?topic=lp'), 'POST', '{"x":1}');
    const got = (await pending).json().messages;
    expect(got).toHaveLength(1);
    expect(JSON.parse(Buffer.from(got[0].body, 'base64').toString())).toEqual({ x: 1 });
  });

  it('an expired lease redelivers; a caller that hangs up gets its messages requeued at once', async () => {
    await call(u('/topic/create?topic=ex'), 'POST');
    await call(u('/channel/create?topic=ex&channel=c'), 'POST');
    await call(u('/pub?topic=ex'), 'POST', 'x');
    const first = (await call(u(`${L}/pull?topic=ex&channel=c&lease_ms=200`), 'POST')).json().messages[0];
    const second = await waitFor(async () => (await call(u(`${L}/pull?topic=ex&channel=c&lease_ms=60000`), 'POST')).json().messages[0], 5000);
    expect(second.id).toBe(first.id);
    expect(second.attempts).toBe(2);
    expect((await stats('ex')).topics[0].channels[0].timeout_count).toBe(1);
    await call(u(`${L}/finish?topic=ex&channel=c&id=${second.id}&token=${second.token}`), 'POST');

    // a long-poll whose caller disconnects before a message arrives leaves nothing in flight
    const ac = new AbortController();
    const gone = request(u(`${L}/pull?topic=ex&channel=c&wait_ms=10000&lease_ms=60000`), { method: 'POST', signal: ac.signal }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    await gone;
    await new Promise((r) => setTimeout(r, 100));
    await call(u('/pub?topic=ex'), 'POST', 'y');
    const ch = (await stats('ex')).topics[0].channels[0];
    expect(ch).toMatchObject({ in_flight_count: 0, depth: 1 });
  });

  it('pull-many waits on many channels with one request', async () => {
    const body = JSON.stringify({ pulls: [{ topic: 'pm1', channel: 'c', max: 5 }, { topic: 'pm2', channel: 'c', max: 5, lease_ms: 2000 }] });
    const pending = call(u(`${L}/pull-many?wait_ms=10000`), 'POST', body);
    await waitFor(async () => (await stats('pm2')).topics[0]?.channels.length === 1);
    await call(u('/mpub?topic=pm2'), 'POST', 'a\nb');
    const res = (await pending).json();
    expect(res.results.map((r: any) => [r.topic, r.channel, r.messages.length])).toEqual([
      ['pm1', 'c', 0],
      ['pm2', 'c', 2],
    ]);
    expect(res.results[1].messages[0].lease_ms).toBe(2000);
    const bad = await call(u(`${L}/pull-many`), 'POST', JSON.stringify({ pulls: [{ topic: 'ok', channel: 'bad/name' }] }));
    expect(bad.status).toBe(400);
    expect(bad.json()).toEqual({ message: 'INVALID_BODY', detail: 'pulls[0]: invalid channel' });
  });

  it('max attempts sends a message to the dead-letter topic instead of delivering it again', async () => {
    const cfg = await call(u('/sluice/channel/config?topic=ma&channel=c&max_attempts=1'), 'POST');
    expect(cfg.json()).toEqual({ topic: 'ma', channel: 'c', max_attempts: 1, dead_letter_topic: 'ma.dead', dead_lettered_count: 0 });
    await call(u('/topic/create?topic=ma.dead'), 'POST');
    await call(u('/channel/create?topic=ma.dead&channel=ops'), 'POST');
    await call(u('/pub?topic=ma'), 'POST', '{"order":7}');
    const [m] = (await call(u(`${L}/pull?topic=ma&channel=c`), 'POST')).json().messages;
    await call(u(`${L}/requeue?topic=ma&channel=c&id=${m.id}&token=${m.token}`), 'POST');
    expect((await call(u(`${L}/pull?topic=ma&channel=c`), 'POST')).json().messages).toEqual([]);
    const [d] = (await call(u(`${L}/pull?topic=ma.dead&channel=ops`), 'POST')).json().messages;
    const env = JSON.parse(Buffer.from(d.body, 'base64').toString());
    expect(env).toMatchObject({ dead_letter: { reason: 'max_attempts_exceeded', topic: 'ma', channel: 'c', message_id: m.id, attempts: 1 }, body: { order: 7 } });
    expect((await call(u('/sluice/channel/config?topic=ma&channel=c'))).json().dead_lettered_count).toBe(1);
    expect((await call(u('/sluice/channel/config?topic=ma&channel=c&max_attempts=x'), 'POST')).json().message).toBe('INVALID_MAX_ATTEMPTS');
    expect((await call(u(`/sluice/channel/config?topic=${'a'.repeat(62)}&channel=c&max_attempts=3`), 'POST')).json().message).toBe('INVALID_DEAD_LETTER_TOPIC');
  });

  it('rejects bad lease requests with a clear error', async () => {
    expect((await call(u(`${L}/pull?channel=c`), 'POST')).json()).toEqual({ message: 'MISSING_ARG_TOPIC' });
    expect((await call(u(`${L}/pull?topic=t&channel=c&max=0`), 'POST')).json()).toEqual({ message: 'INVALID_MAX' });
    expect((await call(u(`${L}/pull?topic=t&channel=c&wait_ms=999999`), 'POST')).json()).toEqual({ message: 'INVALID_WAIT_MS' });
    const bad = await call(u(`${L}/finish?topic=t&channel=c`), 'POST', '{"leases":[{"id":1}]}');
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({ message: 'INVALID_BODY', detail: 'leases[0]: id and token must be strings' });
    expect((await call(u(`${L}/finish?topic=t&channel=c`), 'POST', 'nope')).json().message).toBe('INVALID_BODY');
  });
});
