// `sluice lookup` as a real process: raw TCP clients act like nsqd ("  V1", IDENTIFY, REGISTER, PING) and every
// HTTP endpoint is checked for nsqlookupd v1.3's exact JSON shapes, error codes, tombstones and timeouts.

import net from 'node:net';
import { request } from 'undici';
import { LookupBody, NodesBody, expectShape } from '../helpers/lookup';
import { Running, startProgram, waitFor } from '../helpers/process';
import { LookupResponseDecoder, MAGIC_V1, encodeIdentify, encodePing, encodeRegister, encodeUnregister } from '../../wire/lookup-v1';

/** A raw TCP connection that speaks to the lookup the way nsqd's lookupPeer does. */
class FakeNode {
  private readonly decoder = new LookupResponseDecoder();
  private readonly replies: Buffer[] = [];
  private waiter: (() => void) | null = null;
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.replies.push(...this.decoder.push(chunk));
      this.waiter?.();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static connect(port: number): Promise<FakeNode> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(new FakeNode(socket)));
      socket.once('error', reject);
    });
  }

  /** remote_address as the lookup sees this connection. */
  get address(): string {
    return `127.0.0.1:${this.socket.localPort}`;
  }

  async reply(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (Date.now() > deadline) throw new Error('no reply from lookup');
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.replies.shift()!.toString('utf8');
  }

  async send(bytes: Buffer): Promise<string> {
    this.socket.write(bytes);
    return this.reply();
  }

  /** Magic + IDENTIFY as nsqd sends them; returns the lookup's JSON answer. */
  async identify(name: string, httpPort = 4151): Promise<Record<string, unknown>> {
    this.socket.write(MAGIC_V1);
    const info = { broadcast_address: name, hostname: `${name}.local`, tcp_port: 4150, http_port: httpPort, version: '1.3.0' };
    return JSON.parse(await this.send(encodeIdentify(info))) as Record<string, unknown>;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

async function http(base: string, method: 'GET' | 'POST' | 'PUT' | 'OPTIONS', path: string) {
  const res = await request(base + path, { method });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: (): unknown => JSON.parse(text) };
}

describe('sluice lookup (real process)', () => {
  let lookup: Running;
  let base: string;
  let tcpPort: number;
  const nodes: FakeNode[] = [];

  const connect = async (): Promise<FakeNode> => {
    const n = await FakeNode.connect(tcpPort);
    nodes.push(n);
    return n;
  };
  const lookupTopic = async (topic: string): Promise<LookupBody> => (await http(base, 'GET', `/lookup?topic=${topic}`)).json() as LookupBody;
  const producersOf = async (topic: string): Promise<string[]> => (await lookupTopic(topic)).producers.map((p) => String(p.remote_address));

  beforeAll(async () => {
    lookup = await startProgram(['lookup', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0', '--tombstone-lifetime', '1s', '--broadcast-address', 'lookup-under-test']);
    base = `http://${lookup.addresses.http}`;
    tcpPort = Number(lookup.addresses.tcp.split(':')[1]);
  });

  afterAll(async () => {
    for (const n of nodes) n.destroy();
    await lookup?.stop();
  });

  it('logs the real bound addresses and answers /ping and /info', async () => {
    expect(lookup.addresses.tcp).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(lookup.addresses.http).toMatch(/^127\.0\.0\.1:\d+$/);
    const ping = await http(base, 'GET', '/ping');
    expect([ping.status, ping.text, ping.headers['content-type']]).toEqual([200, 'OK', 'text/plain; charset=utf-8']);
    const info = await http(base, 'GET', '/info');
    expect(info.status).toBe(200);
    expect(info.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(info.headers['x-nsq-content-type']).toBe('nsq; version=1.0');
    expectShape('info', info.json());
  });

  it('registers an nsqd-like node and shows it on every read endpoint', async () => {
    const node = await connect();
    const self = await node.identify('node-a');
    expectShape('identify', self);
    expect(self).toMatchObject({ broadcast_address: 'lookup-under-test', tcp_port: tcpPort, http_port: Number(lookup.addresses.http.split(':')[1]) });
    expect(await node.send(encodeRegister('orders'))).toBe('OK');
    expect(await node.send(encodeRegister('orders', 'billing'))).toBe('OK');
    expect(await node.send(encodePing())).toBe('OK');

    const found = await lookupTopic('orders');
    expectShape('lookup', found);
    expect(found).toEqual({
      channels: ['billing'],
      producers: [{ remote_address: node.address, hostname: 'node-a.local', broadcast_address: 'node-a', tcp_port: 4150, http_port: 4151, version: '1.3.0' }],
    });
    const topics = (await http(base, 'GET', '/topics')).json();
    expectShape('topics', topics);
    expect((topics as { topics: string[] }).topics).toContain('orders');
    const channels = (await http(base, 'GET', '/channels?topic=orders')).json();
    expectShape('channels', channels);
    expect(channels).toEqual({ channels: ['billing'] });
    expect((await http(base, 'GET', '/channels?topic=never-seen')).json()).toEqual({ channels: [] });
    const listed = (await http(base, 'GET', '/nodes')).json() as NodesBody;
    expectShape('nodes', listed);
    expect(listed.producers.find((p) => p.remote_address === node.address)).toMatchObject({ topics: ['orders'], tombstones: [false] });

    expect(await node.send(encodeUnregister('orders', 'billing'))).toBe('OK');
    expect(await node.send(encodeUnregister('orders'))).toBe('OK');
    expect(await lookupTopic('orders')).toEqual({ channels: ['billing'], producers: [] });
  });

  it('drops all of a node’s registrations when it disconnects', async () => {
    const node = await connect();
    await node.identify('node-b');
    await node.send(encodeRegister('leaving', 'ch'));
    expect(await producersOf('leaving')).toEqual([node.address]);
    const address = node.address;
    node.destroy();
    await waitFor(async () => (await producersOf('leaving')).length === 0, 5000, 'producer to be dropped');
    const listed = (await http(base, 'GET', '/nodes')).json() as NodesBody;
    expect(listed.producers.map((p) => p.remote_address)).not.toContain(address);
  });

  it('hides a tombstoned node from /lookup for the tombstone lifetime only', async () => {
    const [a, b] = [await connect(), await connect()];
    await a.identify('node-t1', 5001);
    await b.identify('node-t2', 5002);
    await a.send(encodeRegister('tomb'));
    await b.send(encodeRegister('tomb'));
    const res = await http(base, 'POST', '/topic/tombstone?topic=tomb&node=node-t1:5001');
    expect([res.status, res.text, res.headers['x-nsq-content-type']]).toEqual([200, '', 'nsq; version=1.0']);
    expect(await producersOf('tomb')).toEqual([b.address]);
    const listed = (await http(base, 'GET', '/nodes')).json() as NodesBody;
    expect(listed.producers.find((p) => p.remote_address === a.address)).toMatchObject({ topics: ['tomb'], tombstones: [true] });
    await waitFor(async () => (await producersOf('tomb')).length === 2, 5000, 'tombstone to expire');
  });

  it('creates and deletes topics and channels over HTTP', async () => {
    const ok = async (path: string) => {
      const r = await http(base, 'POST', path);
      expect([r.status, r.text]).toEqual([200, '']);
    };
    await ok('/topic/create?topic=admin');
    expect(await lookupTopic('admin')).toEqual({ channels: [], producers: [] });
    await ok('/channel/create?topic=admin&channel=c1');
    expect((await http(base, 'GET', '/channels?topic=admin')).json()).toEqual({ channels: ['c1'] });
    await ok('/channel/delete?topic=admin&channel=c1');
    expect((await http(base, 'GET', '/channels?topic=admin')).json()).toEqual({ channels: [] });
    await ok('/topic/delete?topic=admin');
    expect((await http(base, 'GET', '/lookup?topic=admin')).status).toBe(404);
  });

  it('answers bad HTTP requests with nsqlookupd’s status and {"message"} body', async () => {
    const cases: Array<[method: 'GET' | 'POST' | 'PUT', path: string, status: number, code: string]> = [
      ['GET', '/lookup', 400, 'MISSING_ARG_TOPIC'],
      ['GET', '/lookup?topic=nope', 404, 'TOPIC_NOT_FOUND'],
      ['GET', '/lookup?topic=%zz', 400, 'INVALID_REQUEST'],
      ['GET', '/channels', 400, 'MISSING_ARG_TOPIC'],
      ['POST', '/topic/create', 400, 'MISSING_ARG_TOPIC'],
      ['POST', '/topic/create?topic=bad!name', 400, 'INVALID_ARG_TOPIC'],
      ['POST', '/channel/create?topic=t', 400, 'MISSING_ARG_CHANNEL'],
      ['POST', '/channel/create?topic=t&channel=', 400, 'INVALID_ARG_CHANNEL'],
      ['POST', '/channel/delete?topic=t&channel=none', 404, 'CHANNEL_NOT_FOUND'],
      ['POST', '/topic/tombstone?topic=t', 400, 'MISSING_ARG_NODE'],
      ['GET', '/no/such/path', 404, 'NOT_FOUND'],
      ['GET', '/create_topic?topic=legacy', 404, 'NOT_FOUND'],
      ['POST', '/lookup?topic=t', 405, 'METHOD_NOT_ALLOWED'],
      ['GET', '/topic/create?topic=t', 405, 'METHOD_NOT_ALLOWED'],
      ['PUT', '/ping', 405, 'METHOD_NOT_ALLOWED'],
    ];
    for (const [method, path, status, code] of cases) {
      const r = await http(base, method, path);
      expect([method, path, r.status]).toEqual([method, path, status]);
      expectShape('error', r.json());
      expect(r.json()).toEqual({ message: code });
      expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(r.headers['x-nsq-content-type']).toBe('nsq; version=1.0');
    }
    const notAllowed = await http(base, 'POST', '/nodes');
    expect(notAllowed.headers.allow).toBe('GET, OPTIONS');
    const options = await http(base, 'OPTIONS', '/topic/create');
    expect([options.status, options.headers.allow]).toEqual([200, 'POST, OPTIONS']);
    const redirect = await http(base, 'GET', '/Lookup/?topic=x');
    expect([redirect.status, redirect.headers.location]).toEqual([301, '/lookup?topic=x']);
  });

  it('answers bad TCP input with nsqlookupd’s error, closes that connection and stays up', async () => {
    const expectFatal = async (bytes: Buffer, error: string, prepare?: (n: FakeNode) => Promise<void>) => {
      const node = await connect();
      await prepare?.(node);
      expect(await node.send(bytes)).toBe(error);
      await node.closed;
    };
    await expectFatal(Buffer.from('  V2PING\n'), 'E_BAD_PROTOCOL');
    await expectFatal(Buffer.concat([MAGIC_V1, encodeRegister('t')]), 'E_INVALID client must IDENTIFY');
    await expectFatal(Buffer.concat([MAGIC_V1, Buffer.from('HELLO\n')]), 'E_INVALID invalid command HELLO');
    await expectFatal(Buffer.concat([MAGIC_V1, encodeIdentify({ broadcast_address: 'x', tcp_port: 1 })]), 'E_BAD_BODY IDENTIFY missing fields');
    await expectFatal(Buffer.concat([MAGIC_V1, Buffer.from('IDENTIFY\n\0\0\0\x02[]', 'latin1')]), 'E_BAD_BODY IDENTIFY failed to decode JSON body');
    await expectFatal(Buffer.concat([MAGIC_V1, Buffer.from('IDENTIFY\n'), Buffer.from([0xff, 0xff, 0xff, 0xff])]), 'E_BAD_BODY IDENTIFY invalid body size -1');
    await expectFatal(encodeIdentify({}), 'E_INVALID cannot IDENTIFY again', async (n) => void (await n.identify('twice')));

    // A registered node that sends a bad name is cut off, and its registrations go with it.
    const node = await connect();
    await node.identify('node-bad');
    await node.send(encodeRegister('kept', 'ch'));
    expect(await node.send(encodeRegister('bad/topic'))).toBe("E_BAD_TOPIC REGISTER topic name 'bad/topic' is not valid");
    await node.closed;
    await waitFor(async () => (await producersOf('kept')).length === 0, 5000, 'registrations of the closed node to go');

    // Half-closing mid-IDENTIFY still gets nsqlookupd's short-read error.
    const half = await connect();
    half.socket.end(Buffer.concat([MAGIC_V1, Buffer.from('IDENTIFY\n\0')]));
    expect(await half.reply()).toBe('E_BAD_BODY IDENTIFY failed to read body size');

    // PING needs no IDENTIFY.
    const pinger = await connect();
    expect(await pinger.send(Buffer.concat([MAGIC_V1, encodePing()]))).toBe('OK');

    expect((await http(base, 'GET', '/ping')).text).toBe('OK');
    expect(lookup.child.exitCode).toBeNull();
  });
});

describe('sluice lookup with a short --inactive-producer-timeout', () => {
  let lookup: Running;
  let node: FakeNode | undefined;

  beforeAll(async () => {
    lookup = await startProgram(['lookup', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0', '--inactive-producer-timeout', '400ms']);
  });

  afterAll(async () => {
    node?.destroy();
    await lookup?.stop();
  });

  it('hides a node that stops pinging from /lookup and /nodes, and a PING brings it back', async () => {
    const base = `http://${lookup.addresses.http}`;
    node = await FakeNode.connect(Number(lookup.addresses.tcp.split(':')[1]));
    await node.identify('quiet');
    await node.send(encodeRegister('idle'));
    const producers = async (): Promise<number> => ((await http(base, 'GET', '/lookup?topic=idle')).json() as LookupBody).producers.length;
    const nodeCount = async (): Promise<number> => ((await http(base, 'GET', '/nodes')).json() as NodesBody).producers.length;
    await waitFor(async () => (await producers()) === 0 && (await nodeCount()) === 0, 5000, 'node to become inactive');
    expect(await node.send(encodePing())).toBe('OK');
    expect(await producers()).toBe(1);
    expect(await nodeCount()).toBe(1);
  });
});
