// NSQ TCP protocol V2 against a real shard process, over raw sockets: every command, nsqd's
// error frames (and which ones close the connection), malformed input, heartbeats, output
// buffering, per-client settings, limits, CLS, and TCP ↔ HTTP interplay. The shard stays up.

import { cmd, mpubBody, RawClient, u32 } from '../helpers/nsq-raw';
import { waitFor } from '../helpers/process';
import { call, ShardProcess, startShard } from '../helpers/shard';

let shard: ShardProcess;
let tcp: string;

beforeAll(async () => {
  shard = await startShard([
    '--max-msg-size', '1024',
    '--max-body-size', '4096',
    '--max-req-timeout', '10s',
    '--max-rdy-count', '100',
    '--max-channel-consumers', '2',
  ]);
  tcp = shard.addresses.tcp;
});
afterAll(async () => {
  await shard?.stop();
});

const clients: RawClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

async function open(magic: string | false = '  V2'): Promise<RawClient> {
  const c = await RawClient.connect(tcp, magic);
  clients.push(c);
  return c;
}

/** A connection subscribed to topic/channel, after an optional IDENTIFY. */
async function subscriber(topic: string, channel: string, identify?: Record<string, unknown>): Promise<RawClient> {
  const c = await open();
  if (identify) expect((await c.identify(identify)).type).toBe('response');
  c.write(cmd(`SUB ${topic} ${channel}`));
  expect(await c.response()).toBe('OK');
  return c;
}

/** The next frame is this error, and (if fatal) the server then closes the connection. */
async function expectError(c: RawClient, text: string, fatal = true): Promise<void> {
  const f = await c.next();
  expect({ type: f.type, text: f.text }).toEqual({ type: 'error', text });
  if (fatal) await c.waitClosed();
}

async function channelStats(topic: string, channel: string): Promise<any> {
  const doc = (await call(shard.url(`/stats?format=json&topic=${topic}&channel=${channel}&include_clients=true`))).json();
  return doc.topics[0]?.channels[0];
}

async function pubHttp(topic: string, body: string): Promise<void> {
  expect((await call(shard.url(`/pub?topic=${topic}`), 'POST', body)).text).toBe('OK');
}

const ID = '0123456789abcdef';

describe('connection set-up', () => {
  it('advertises the real TCP port in /info', async () => {
    const info = (await call(shard.url('/info'))).json();
    expect(info.tcp_port).toBe(Number(tcp.split(':')[1]));
  });

  it('answers bad magic with E_BAD_PROTOCOL and closes; accepts the magic split across packets', async () => {
    const bad = await open('  V1');
    await expectError(bad, 'E_BAD_PROTOCOL');
    const split = await open(false);
    split.write('  ');
    await new Promise((r) => setImmediate(r));
    split.write('V2NOP\n');
    split.write(cmd('PUB split', 'x'));
    expect(await split.response()).toBe('OK');
  });

  it('negotiates features on IDENTIFY with nsqd fields and bounds', async () => {
    const c = await open();
    const f = await c.identify({ feature_negotiation: true, client_id: 'c1', hostname: 'h1', user_agent: 'raw/1.0', heartbeat_interval: 5000, output_buffer_size: 4096, output_buffer_timeout: 100, msg_timeout: 5000, sample_rate: 0, unknown_field: [1] });
    expect(JSON.parse(f.text)).toEqual({
      max_rdy_count: 100,
      version: '1.3.0',
      max_msg_timeout: 900000,
      msg_timeout: 5000,
      tls_v1: false,
      deflate: expect.any(Boolean),
      deflate_level: 6,
      max_deflate_level: 6,
      snappy: expect.any(Boolean),
      sample_rate: 0,
      auth_required: false,
      output_buffer_size: 4096,
      output_buffer_timeout: 100,
    });
    const plain = await open();
    expect((await plain.identify({ client_id: 'x' })).text).toBe('OK');
    // the defaults, as nsqd answers them
    const d = await open();
    expect(JSON.parse((await d.identify({ feature_negotiation: true })).text)).toMatchObject({ msg_timeout: 60000, output_buffer_size: 16384, output_buffer_timeout: 250 });
  });

  it('refuses IDENTIFY settings outside nsqd bounds and malformed bodies (fatal E_BAD_BODY)', async () => {
    const cases: [Record<string, unknown> | string, string][] = [
      [{ heartbeat_interval: 500 }, 'heartbeat interval (500) is invalid'],
      [{ heartbeat_interval: 60001 }, 'heartbeat interval (60001) is invalid'],
      [{ output_buffer_size: 10 }, 'output buffer size (10) is invalid'],
      [{ output_buffer_size: 65537 }, 'output buffer size (65537) is invalid'],
      [{ output_buffer_timeout: 5 }, 'output buffer timeout (5) is invalid'],
      [{ sample_rate: 100 }, 'sample rate (100) is invalid'],
      [{ msg_timeout: 500 }, 'msg timeout (500) is invalid'],
      [{ msg_timeout: 900001 }, 'msg timeout (900001) is invalid'],
      ['{"client_id": ', 'failed to decode JSON body'],
      [{ heartbeat_interval: 'soon' }, 'failed to decode JSON body'],
      [{ feature_negotiation: 1 }, 'failed to decode JSON body'],
      ['[1,2]', 'failed to decode JSON body'],
    ];
    for (const [body, text] of cases) {
      const c = await open();
      c.write(cmd('IDENTIFY', typeof body === 'string' ? body : JSON.stringify(body)));
      await expectError(c, `E_BAD_BODY IDENTIFY ${text}`);
    }
  });

  it('answers AUTH with E_AUTH_DISABLED when no auth server is configured', async () => {
    const c = await open();
    c.write(cmd('AUTH', 'secret'));
    await expectError(c, 'E_AUTH_DISABLED AUTH disabled');
  });
});

describe('publishing', () => {
  it('publishes with PUB, MPUB and DPUB, counting them per topic for /stats producers', async () => {
    const c = await open();
    await c.identify({ client_id: 'pub1', hostname: 'ph' });
    c.write(Buffer.concat([cmd('PUB p1', 'one'), cmd('MPUB p1', mpubBody(['two', 'three'])), cmd('DPUB p1 5000', 'later'), cmd('NOP')]));
    for (let i = 0; i < 3; i++) expect(await c.response()).toBe('OK');
    const doc = (await call(shard.url('/stats?format=json&topic=p1&include_clients=true'))).json();
    expect(doc.topics[0]).toMatchObject({ topic_name: 'p1', message_count: 4 });
    const producer = doc.producers.find((p: any) => p.client_id === 'pub1');
    expect(producer).toMatchObject({ hostname: 'ph', version: 'V2', state: 0, pub_counts: [{ topic: 'p1', count: 4 }] });
  });

  it('is all or nothing for MPUB, and rejects bad bodies with nsqd errors', async () => {
    const bad = await open();
    const body = Buffer.concat([u32(3), u32(1), Buffer.from('a'), u32(1), Buffer.from('b'), u32(0)]);
    bad.write(cmd('MPUB atomic', body));
    await expectError(bad, 'E_BAD_MESSAGE MPUB invalid message(2) body size 0');
    const doc = (await call(shard.url('/stats?format=json&topic=atomic'))).json();
    expect(doc.topics).toEqual([]); // nothing published, not even the topic

    const cases: [Buffer, string][] = [
      [cmd('MPUB m', u32(0)), 'E_BAD_BODY MPUB invalid message count 0'],
      [cmd('MPUB m', Buffer.alloc(5000)), 'E_BAD_BODY MPUB body too big 5000 > 4096'],
      [cmd('MPUB m', Buffer.concat([u32(1), u32(2000), Buffer.alloc(2000)])), 'E_BAD_MESSAGE MPUB message too big 2000 > 1024'],
      [Buffer.concat([cmd('MPUB m'), u32(0)]), 'E_BAD_BODY MPUB invalid body size 0'],
      [cmd('PUB bad!topic', 'x'), 'E_BAD_TOPIC PUB topic name "bad!topic" is not valid'],
      [cmd('MPUB bad!topic', mpubBody(['x'])), 'E_BAD_TOPIC E_BAD_TOPIC MPUB topic name "bad!topic" is not valid'],
      [cmd('PUB t', Buffer.alloc(1025)), 'E_BAD_MESSAGE PUB message too big 1025 > 1024'],
      [Buffer.concat([cmd('PUB t'), u32(0x7fffffff)]), 'E_BAD_MESSAGE PUB message too big 2147483647 > 1024'],
      [Buffer.concat([cmd('PUB t'), u32(0)]), 'E_BAD_MESSAGE PUB invalid message body size 0'],
      [cmd('PUB'), 'E_INVALID PUB insufficient number of parameters'],
      [cmd('DPUB t 10001', 'x'), 'E_INVALID DPUB timeout 10001 out of range 0-10000'],
      [cmd('DPUB t soon', 'x'), 'E_INVALID DPUB could not parse timeout soon'],
    ];
    for (const [bytes, text] of cases) {
      const c = await open();
      c.write(bytes);
      await expectError(c, text);
    }
  });
});

describe('malformed input', () => {
  it('closes with the right error for invalid commands, truncated frames and EOF mid-command', async () => {
    const cases: [Buffer | string, string | null][] = [
      ['FOO bar\n', 'E_INVALID invalid command FOO'],
      ['RDY 1\n', 'E_INVALID cannot RDY in current state'],
      [`FIN ${ID}\n`, 'E_INVALID cannot FIN in current state'],
      ['FIN \n', 'E_INVALID cannot FIN in current state'],
      ['CLS\n', 'E_INVALID cannot CLS in current state'],
      ['SUB t bad!chan\n', 'E_BAD_CHANNEL SUB channel name "bad!chan" is not valid'],
      ['SUB bad!topic c\n', 'E_BAD_TOPIC SUB topic name "bad!topic" is not valid'],
      ['SUB t\n', 'E_INVALID SUB insufficient number of parameters'],
      ['AUTH x\n', 'E_INVALID AUTH invalid number of parameters'],
      [Buffer.concat([cmd('IDENTIFY'), u32(0x7fffffff)]), 'E_BAD_BODY IDENTIFY body too big 2147483647 > 4096'],
      ['x'.repeat(20_000), 'E_INVALID command line longer than 16383 bytes'],
    ];
    for (const [bytes, text] of cases) {
      const c = await open();
      c.write(bytes);
      if (text) await expectError(c, text);
    }
    // EOF inside a command: the command's "failed to read" error, then close
    const eofCases: [Buffer, string][] = [
      [cmd('IDENTIFY'), 'E_BAD_BODY IDENTIFY failed to read body size'],
      [Buffer.concat([cmd('IDENTIFY'), u32(10), Buffer.from('{"a"')]), 'E_BAD_BODY IDENTIFY failed to read body'],
      [Buffer.concat([cmd('PUB t'), u32(10), Buffer.from('abc')]), 'E_BAD_MESSAGE PUB failed to read message body'],
      [Buffer.concat([cmd('PUB t'), Buffer.from([0, 0])]), 'E_BAD_MESSAGE PUB failed to read message body size'],
      [Buffer.concat([cmd('MPUB t'), u32(20), u32(2), u32(1), Buffer.from('a')]), 'E_BAD_MESSAGE MPUB failed to read message(1) body size'],
    ];
    for (const [bytes, text] of eofCases) {
      const c = await open();
      c.socket.end(bytes);
      await expectError(c, text);
    }
    // a partial line at EOF is dropped silently, as nsqd does
    const partial = await open();
    partial.socket.end('NO');
    await partial.waitClosed();
    expect(partial.frames).toEqual([]);
    expect((await call(shard.url('/ping'))).text).toBe('OK');
  });

  it('survives a flood of garbage and byte-by-byte input', async () => {
    const c = await open();
    const bytes = Buffer.concat([cmd('PUB drip', 'hello'), cmd('MPUB drip', mpubBody(['a', 'b'])), cmd('NOP')]);
    for (const b of bytes) c.write(Buffer.from([b]));
    expect(await c.response()).toBe('OK');
    expect(await c.response()).toBe('OK');
    const junk = await open();
    junk.write(Buffer.alloc(64 * 1024, 0xff));
    await junk.waitClosed();
    expect((await call(shard.url('/ping'))).text).toBe('OK');
  });
});

describe('consuming', () => {
  it('delivers with RDY, and answers FIN/REQ/TOUCH on unknown ids with non-fatal errors', async () => {
    const c = await subscriber('c1', 'ch');
    await pubHttp('c1', 'first');
    c.write(cmd('RDY 1'));
    const m = await c.message();
    expect({ body: m.body.toString(), attempts: m.attempts }).toEqual({ body: 'first', attempts: 1 });
    expect(Number(m.timestamp / 1_000_000n)).toBeGreaterThan(Date.now() - 60_000);
    c.write(cmd(`FIN ${ID}`));
    await expectError(c, `E_FIN_FAILED FIN ${ID} failed ID not in flight`, false);
    c.write(cmd(`REQ ${ID} 0`));
    await expectError(c, `E_REQ_FAILED REQ ${ID} failed ID not in flight`, false);
    c.write(cmd(`TOUCH ${ID}`));
    await expectError(c, `E_TOUCH_FAILED TOUCH ${ID} failed ID not in flight`, false);
    c.write(cmd(`TOUCH ${m.id}`));
    c.write(cmd(`FIN ${m.id}`));
    c.write(cmd(`FIN ${m.id}`)); // twice: the second is not in flight any more
    await expectError(c, `E_FIN_FAILED FIN ${m.id} failed ID not in flight`, false);
    // still usable
    c.write(cmd('PUB c1-other', 'x'));
    expect(await c.response()).toBe('OK');
    const s = await channelStats('c1', 'ch');
    expect(s).toMatchObject({ depth: 0, in_flight_count: 0, message_count: 1 });
    expect(s.clients[0]).toMatchObject({ finish_count: 1, message_count: 1, ready_count: 1, in_flight_count: 0, state: 3, version: 'V2' });
  });

  it('refuses FIN of a message another consumer holds (client does not own message), and fatal errors after SUB', async () => {
    const a = await subscriber('own', 'ch');
    const b = await subscriber('own', 'ch');
    await pubHttp('own', 'm');
    a.write(cmd('RDY 1'));
    const m = await a.message();
    b.write(cmd(`FIN ${m.id}`));
    await expectError(b, `E_FIN_FAILED FIN ${m.id} failed client does not own message`, false);
    b.write('FIN \n');
    await expectError(b, 'E_INVALID Invalid Message ID');
    a.write(cmd('SUB own ch'));
    await expectError(a, 'E_INVALID cannot SUB in current state');
    const c = await subscriber('own', 'ch2');
    c.write(cmd('RDY 101'));
    await expectError(c, 'E_INVALID RDY count 101 out of range 0-100');
    const d = await subscriber('own', 'ch2');
    d.write(cmd('IDENTIFY', '{}'));
    await expectError(d, 'E_INVALID cannot IDENTIFY in current state');
  });

  it('requeues with REQ (delayed, clamped to --max-req-timeout) and redelivers with attempts + 1', async () => {
    const c = await subscriber('rq', 'ch');
    await pubHttp('rq', 'again');
    c.write(cmd('RDY 1'));
    const first = await c.message();
    const t0 = Date.now();
    c.write(cmd(`REQ ${first.id} 300`));
    const second = await c.message();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect({ id: second.id, attempts: second.attempts }).toEqual({ id: first.id, attempts: 2 });
    c.write(cmd(`REQ ${second.id} 99999999`)); // nsqd clamps, no error
    await waitFor(async () => (await channelStats('rq', 'ch')).deferred_count === 1, 5000, 'deferred');
    const s = await channelStats('rq', 'ch');
    expect(s).toMatchObject({ requeue_count: 2, in_flight_count: 0 });
    expect(s.clients[0].requeue_count).toBe(2);
  });

  it('times a message out after the client msg_timeout, and TOUCH pushes the deadline back', async () => {
    const c = await subscriber('mt', 'ch', { msg_timeout: 1000 });
    await pubHttp('mt', 'slow');
    c.write(cmd('RDY 1'));
    const m = await c.message();
    const t0 = Date.now();
    // touch twice, 600 ms apart: without the touches the message would be back after 1 s
    for (let i = 0; i < 2; i++) {
      await waitFor(() => Date.now() - t0 >= 600 * (i + 1), 2000, 'touch time');
      c.write(cmd(`TOUCH ${m.id}`));
    }
    const again = await c.message(5000);
    const elapsed = Date.now() - t0;
    expect(again.attempts).toBe(2);
    expect(elapsed).toBeGreaterThanOrEqual(2100);
    expect(elapsed).toBeLessThan(4000);
    expect((await channelStats('mt', 'ch')).timeout_count).toBe(1);
  });

  it('requeues the in-flight messages of a client that disconnects at once', async () => {
    const a = await subscriber('dc', 'ch');
    await pubHttp('dc', 'x');
    a.write(cmd('RDY 1'));
    const m = await a.message();
    a.close();
    const b = await subscriber('dc', 'ch');
    const t0 = Date.now();
    b.write(cmd('RDY 1'));
    const again = await b.message();
    expect(Date.now() - t0).toBeLessThan(1000); // not the 60 s msg timeout
    expect({ id: again.id, attempts: again.attempts }).toEqual({ id: m.id, attempts: 2 });
  });

  it('limits consumers per channel with --max-channel-consumers (E_SUB_FAILED)', async () => {
    await subscriber('mc', 'ch');
    await subscriber('mc', 'ch');
    const third = await open();
    third.write(cmd('SUB mc ch'));
    await expectError(third, 'E_SUB_FAILED SUB failed consumers for mc:ch exceeds limit of 2');
  });

  it('CLS: CLOSE_WAIT, no more messages, RDY ignored, closed once the in-flight ones finish', async () => {
    const c = await subscriber('cls', 'ch');
    for (const b of ['a', 'b', 'c']) await pubHttp('cls', b);
    c.write(cmd('RDY 2'));
    const m1 = await c.message();
    const m2 = await c.message();
    c.write(cmd('CLS'));
    expect(await c.response()).toBe('CLOSE_WAIT');
    c.write(cmd('RDY 10'));
    c.write(cmd(`FIN ${m1.id}`));
    await waitFor(async () => (await channelStats('cls', 'ch')).in_flight_count === 1, 5000, 'first FIN');
    expect(c.isClosed).toBe(false);
    c.write(cmd(`FIN ${m2.id}`));
    await c.waitClosed();
    expect(c.frames).toEqual([]); // the third message was never sent
    expect(await channelStats('cls', 'ch')).toMatchObject({ depth: 1, in_flight_count: 0 });
  });
});

describe('per-client settings', () => {
  it('sends heartbeats every heartbeat_interval and drops a client that misses two', async () => {
    const alive = await open();
    await alive.identify({ heartbeat_interval: 1000 });
    const quiet = await open();
    await quiet.identify({ heartbeat_interval: 1000 });
    const t0 = Date.now();
    const hb = await alive.next(3000, true);
    expect(hb.text).toBe('_heartbeat_');
    alive.write(cmd('NOP'));
    await quiet.waitClosed(5000);
    const dropped = Date.now() - t0;
    expect(dropped).toBeGreaterThanOrEqual(1900);
    expect(dropped).toBeLessThan(3500);
    expect(quiet.heartbeats).toBeGreaterThanOrEqual(1);
    // the one that answered is still there after the other was dropped
    await alive.next(3000, true);
    alive.write(cmd('PUB hb', 'x'));
    expect(await alive.response()).toBe('OK');
  });

  it('with heartbeat_interval -1 sends none and refuses SUB', async () => {
    const c = await open();
    expect((await c.identify({ heartbeat_interval: -1 })).text).toBe('OK');
    c.write(cmd('SUB t c'));
    await expectError(c, 'E_INVALID cannot SUB with heartbeats disabled');
  });

  it('buffers output for output_buffer_timeout while the client is ready for more, flushes at once when it is not', async () => {
    const latency = async (topic: string, identify: Record<string, unknown>, rdy: number): Promise<number> => {
      const c = await subscriber(topic, 'ch', identify);
      c.write(cmd(`RDY ${rdy}`));
      await waitFor(async () => (await channelStats(topic, 'ch')).clients[0].ready_count === rdy, 5000, 'RDY');
      const t0 = Date.now();
      await pubHttp(topic, 'x'.repeat(100));
      await c.message(5000);
      return Date.now() - t0;
    };
    expect(await latency('ob1', { output_buffer_timeout: 1000 }, 10)).toBeGreaterThanOrEqual(900);
    expect(await latency('ob2', { output_buffer_timeout: 1000 }, 1)).toBeLessThan(500);
    expect(await latency('ob3', { output_buffer_timeout: 1000, output_buffer_size: 64 }, 10)).toBeLessThan(500);
    expect(await latency('ob4', { output_buffer_timeout: 1000, output_buffer_size: -1 }, 10)).toBeLessThan(500);
  });

  it('samples with sample_rate: about that share of messages is delivered, the rest dropped', async () => {
    const c = await subscriber('sr', 'ch', { sample_rate: 10 });
    const p = await open();
    for (let i = 0; i < 2000; i += 250) {
      p.write(cmd('MPUB sr', mpubBody(Array.from({ length: 250 }, (_, j) => `m${i + j}`))));
      expect(await p.response()).toBe('OK');
    }
    c.write(cmd('RDY 100'));
    let got = 0;
    await waitFor(async () => {
      while (c.frames.length > 0) {
        const f = c.frames.shift()!;
        if (f.type === 'message') {
          got++;
          c.write(cmd(`FIN ${f.id}`));
        }
      }
      const s = await channelStats('sr', 'ch');
      return s.depth === 0 && s.in_flight_count === 0;
    }, 10000, 'sampled channel drained');
    // nsqd keeps a message when rand(100) <= sample_rate: 11 % expected
    expect(got).toBeGreaterThan(2000 * 0.05);
    expect(got).toBeLessThan(2000 * 0.2);
    expect((await channelStats('sr', 'ch')).clients[0].sample_rate).toBe(10);
  });
});

describe('TCP and HTTP together', () => {
  it('delivers over HTTP leases what was published over TCP, and over TCP what was published over HTTP', async () => {
    await call(shard.url('/topic/create?topic=mix'), 'POST');
    await call(shard.url('/channel/create?topic=mix&channel=ch'), 'POST');
    const p = await open();
    p.write(cmd('MPUB mix', mpubBody(['tcp-1', 'tcp-2'])));
    expect(await p.response()).toBe('OK');
    const pulled = (await call(shard.url('/sluice/lease/pull?topic=mix&channel=ch&max=10'), 'POST')).json();
    expect(pulled.messages.map((m: any) => Buffer.from(m.body, 'base64').toString())).toEqual(['tcp-1', 'tcp-2']);

    // a TCP consumer may not settle a message leased over HTTP
    const c = await subscriber('mix', 'ch');
    c.write(cmd(`FIN ${pulled.messages[0].id}`));
    await expectError(c, `E_FIN_FAILED FIN ${pulled.messages[0].id} failed client does not own message`, false);

    await pubHttp('mix', 'http-1');
    c.write(cmd('RDY 5'));
    const m = await c.message();
    expect(m.body.toString()).toBe('http-1');
    const s = await channelStats('mix', 'ch');
    const client = s.clients[0];
    for (const k of ['client_id', 'hostname', 'version', 'remote_address', 'state', 'ready_count', 'in_flight_count', 'message_count', 'finish_count', 'requeue_count', 'connect_ts', 'sample_rate', 'deflate', 'snappy', 'user_agent', 'tls', 'tls_cipher_suite', 'tls_version', 'tls_negotiated_protocol', 'tls_negotiated_protocol_is_mutual']) {
      expect(client).toHaveProperty(k);
    }
    expect(client.remote_address).toMatch(/^127\.0\.0\.1:\d+$/);
    const text = (await call(shard.url('/stats?topic=mix'))).text;
    expect(text).toMatch(/\[V2 127\.0\.0\.1:\d+\s*\] state: 3 inflt: 1/);
  });
});

describe('shutdown', () => {
  it('ends TCP connections cleanly on SIGTERM and keeps their in-flight messages for the restart', async () => {
    const own = await startShard();
    try {
      const c = await RawClient.connect(own.addresses.tcp);
      clients.push(c);
      let ended = false;
      c.socket.once('end', () => (ended = true));
      c.write(cmd('SUB sd ch'));
      expect(await c.response()).toBe('OK');
      c.write(cmd('MPUB sd', mpubBody(['one', 'two'])));
      expect(await c.response()).toBe('OK');
      c.write(cmd('RDY 1'));
      const m = await c.message();
      expect(m.body.toString()).toBe('one');
      expect(await own.stop()).toBe(0);
      await c.waitClosed();
      expect(ended).toBe(true); // a FIN from the server, not a reset
    } finally {
      await own.stop();
    }
    const again = await startShard([], own.dataPath);
    try {
      const doc = (await call(again.url('/stats?format=json&topic=sd&channel=ch'))).json();
      expect(doc.topics[0].channels[0]).toMatchObject({ depth: 2, in_flight_count: 0 });
      const c = await RawClient.connect(again.addresses.tcp);
      clients.push(c);
      c.write(cmd('SUB sd ch'));
      expect(await c.response()).toBe('OK');
      c.write(cmd('RDY 2'));
      const got = [await c.message(), await c.message()].map((f) => `${f.body}:${f.attempts}`).sort();
      expect(got).toEqual(['one:2', 'two:1']);
    } finally {
      await again.stop();
    }
  });
});
