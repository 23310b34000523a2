// A shard's registration with lookups, driven by a real engine against in-process lookups (the real
// lookup/ servers, or a fake that records every command and can stop answering): what is registered when.

import net from 'node:net';
import { Writable } from 'node:stream';
import http from 'node:http';
import winston from 'winston';
import { createHttpServer } from '../../lookup/http';
import { Registry } from '../../lookup/registry';
import { createTcpServer } from '../../lookup/tcp';
import type { Logger } from '../../runtime/logger';
import { Engine } from '../../shard/engine/engine';
import { FakeClock } from '../../shard/engine/clock';
import { MemoryStore } from '../../shard/engine/store';
import { backoffDelay, parseIdentifyResponse, type RegistrationOptions } from '../../shard/lookup-peer';
import { LookupRegistration, holdingsOf, parseChannelsResponse } from '../../shard/registration';
import { LookupV1Decoder, encodeResponse } from '../../wire/lookup-v1';
import { waitFor } from '../helpers/process';

type LogEntry = Record<string, unknown> & { level: string; message: string };

function captureLogger(): { logger: Logger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const stream = new Writable({
    objectMode: true,
    write(info: LogEntry, _enc, cb) {
      entries.push(info);
      cb();
    },
  });
  return { logger: winston.createLogger({ level: 'debug', transports: [new winston.transports.Stream({ stream })] }), entries };
}

const silent = winston.createLogger({ silent: true });

/** The real lookup (registry + TCP + HTTP servers) in this process. */
async function startLookup(tcpPort = 0): Promise<{ registry: Registry; address: string; tcpPort: number; httpPort: number; close(): Promise<void> }> {
  const registry = new Registry({ now: () => performance.now(), inactiveProducerTimeoutMs: 300_000, tombstoneLifetimeMs: 45_000 });
  const ports = { tcp: 0, http: 0 };
  const tcp = createTcpServer({
    registry,
    logger: silent,
    self: { broadcastAddress: '127.0.0.1', hostname: 'lookup.local', version: '1.3.0', tcpPort: () => ports.tcp, httpPort: () => ports.http },
  });
  const web = createHttpServer({ registry, version: '1.3.0', logger: silent });
  ports.tcp = (await tcp.start('127.0.0.1', tcpPort)).port;
  ports.http = (await web.start('127.0.0.1', 0)).port;
  return {
    registry,
    address: `127.0.0.1:${ports.tcp}`,
    tcpPort: ports.tcp,
    httpPort: ports.http,
    close: async () => void (await Promise.all([tcp.close(), web.close()])),
  };
}

/**
 * A lookup that records each command line and answers like nsqlookupd ("answer"), answers IDENTIFY only
 * ("identify-only"), or never answers at all ("hang"). Its IDENTIFY answer names `httpPort`.
 */
class FakeLookup {
  readonly commands: string[] = [];
  connections = 0;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    public mode: 'answer' | 'identify-only' | 'hang',
    private readonly httpPort: number,
  ) {}

  static async start(opts: { port?: number; mode?: FakeLookup['mode']; httpPort?: number } = {}): Promise<FakeLookup> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
    const fake = new FakeLookup(server, (server.address() as net.AddressInfo).port, opts.mode ?? 'answer', opts.httpPort ?? 1);
    server.on('connection', (s) => fake.accept(s));
    return fake;
  }

  private accept(socket: net.Socket): void {
    this.connections++;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const decoder = new LookupV1Decoder();
    socket.on('data', (chunk: Buffer) => {
      for (const item of decoder.push(chunk)) {
        if (item.type !== 'command') continue;
        const { name, params } = item.command;
        this.commands.push(name === 'IDENTIFY' ? `IDENTIFY ${item.command.body.toString()}` : [name, ...params].join(' '));
        if (this.mode === 'hang' || (this.mode === 'identify-only' && name !== 'IDENTIFY')) continue;
        const answer = name === 'IDENTIFY' ? JSON.stringify({ broadcast_address: '127.0.0.1', hostname: 'fake', http_port: this.httpPort, tcp_port: this.port, version: '1.3.0' }) : 'OK';
        socket.write(encodeResponse(answer));
      }
    });
  }

  /** Commands other than PING, IDENTIFY shown by name only. */
  registrations(): string[] {
    return this.commands.filter((c) => c !== 'PING').map((c) => (c.startsWith('IDENTIFY') ? 'IDENTIFY' : c));
  }

  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  close(): Promise<void> {
    this.dropConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const FAST: Partial<RegistrationOptions> = { pingIntervalMs: 10_000, backoffBaseMs: 20, backoffMaxMs: 200, responseTimeoutMs: 400, httpTimeoutMs: 400 };

/** A real engine (memory store, fake clock) wired to a registration the way shard.ts wires them. */
function shard(addresses: string[], opts: Partial<RegistrationOptions> = {}, random?: () => number) {
  const { logger, entries } = captureLogger();
  const engine: Engine = new Engine({}, { store: new MemoryStore(), clock: new FakeClock(), channelsElsewhere: (t) => registration.channelsElsewhere(t) });
  const registration: LookupRegistration = new LookupRegistration(
    addresses,
    { ...FAST, ...opts },
    {
      logger,
      random,
      announcement: () => ({ broadcast_address: 'shard-a', hostname: 'shard-a.local', tcp_port: 4150, http_port: 4151, version: '1.3.0' }),
      holdings: () => holdingsOf(engine),
    },
  );
  engine.addListener(registration);
  cleanups.push(async () => {
    await registration.close();
    engine.close();
  });
  return { engine, registration, logs: entries, messages: (m: string) => entries.filter((e) => e.message === m) };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
function track<T extends { close(): Promise<void> }>(x: T): T {
  cleanups.push(() => x.close());
  return x;
}

/** A port nothing listens on (bound, read, released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

const producerIds = (registry: Registry, topic: string): string[] => (registry.lookup(topic)?.producers ?? []).map((p) => p.broadcastAddress);

describe('registration: pure parts', () => {
  it('backoff doubles from the base up to the cap, half of it jittered', () => {
    const top = (n: number) => backoffDelay(n, 100, 1000, () => 1);
    expect([1, 2, 3, 4, 5, 6, 40].map(top)).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    expect(backoffDelay(3, 100, 1000, () => 0)).toBe(200);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(3, 100, 1000, Math.random);
      expect(d).toBeGreaterThanOrEqual(200);
      expect(d).toBeLessThanOrEqual(400);
    }
  });

  it('reads the lookup’s IDENTIFY and /channels answers, old and new shapes', () => {
    expect(parseIdentifyResponse('{"broadcast_address":"lk","http_port":4161,"tcp_port":4160,"version":"1.3.0","hostname":"h"}')).toEqual({ broadcastAddress: 'lk', httpPort: 4161 });
    expect(parseIdentifyResponse('E_BAD_BODY IDENTIFY missing fields')).toBeNull();
    expect(parseIdentifyResponse('[]')).toBeNull();
    expect(parseChannelsResponse('{"channels":["a","b"]}')).toEqual(['a', 'b']);
    expect(parseChannelsResponse('{"status_code":200,"status_txt":"OK","data":{"channels":["a"]}}')).toEqual(['a']);
    expect(() => parseChannelsResponse('{"message":"MISSING_ARG_TOPIC"}')).toThrow();
  });
});

describe('registration with lookups', () => {
  it('identifies with the shard’s ports and registers every topic and channel it holds on connect', async () => {
    const lookup = track(await startLookup());
    const s = shard([lookup.address]);
    s.engine.channel('orders', 'billing');
    s.engine.channel('orders', 'audit');
    s.engine.topic('events');
    s.registration.start();
    await waitFor(() => producerIds(lookup.registry, 'orders').length === 1 && producerIds(lookup.registry, 'events').length === 1, 3000, 'registration');
    const [peer] = lookup.registry.lookup('orders')!.producers;
    expect(peer).toMatchObject({ broadcastAddress: 'shard-a', hostname: 'shard-a.local', tcpPort: 4150, httpPort: 4151, version: '1.3.0' });
    expect(lookup.registry.channels('orders').sort()).toEqual(['audit', 'billing']);
    expect(lookup.registry.channels('events')).toEqual([]);
    expect(s.registration.status()).toEqual([
      { address: lookup.address, state: 'ready', failures: 0, retryInMs: 0, pending: 0, httpAddress: `127.0.0.1:${lookup.httpPort}` },
    ]);
    expect(s.messages('lookup connected')[0]).toMatchObject({ level: 'info', lookup: lookup.address, registered: 3 });
  });

  it('REGISTERs and UNREGISTERs as topics and channels come and go, and PINGs every interval', async () => {
    const fake = track(await FakeLookup.start());
    const s = shard([`127.0.0.1:${fake.port}`], { pingIntervalMs: 100 });
    s.engine.channel('kept', 'c1');
    s.registration.start();
    await waitFor(() => s.registration.status()[0].state === 'ready', 3000, 'ready');
    expect(JSON.parse(fake.commands[0].slice('IDENTIFY '.length))).toEqual({ broadcast_address: 'shard-a', hostname: 'shard-a.local', tcp_port: 4150, http_port: 4151, version: '1.3.0' });

    s.engine.channel('t', 'c');
    s.engine.channel('t', 'e#ephemeral');
    s.engine.deleteChannel('t', 'e#ephemeral');
    s.engine.deleteTopic('t');
    const expected = ['IDENTIFY', 'REGISTER kept c1', 'REGISTER t', 'REGISTER t c', 'REGISTER t e#ephemeral', 'UNREGISTER t e#ephemeral', 'UNREGISTER t c', 'UNREGISTER t'];
    await waitFor(() => fake.registrations().length === expected.length, 3000, 'commands');
    expect(fake.registrations()).toEqual(expected);
    await waitFor(() => fake.commands.filter((c) => c === 'PING').length >= 2, 3000, 'two PINGs');
    expect(s.registration.status()[0].pending).toBeLessThanOrEqual(1);
  });

  it('re-registers everything, including what changed meanwhile, when a lookup comes back on the same port', async () => {
    const first = await startLookup();
    const s = shard([first.address]);
    s.engine.channel('orders', 'billing');
    s.registration.start();
    await waitFor(() => producerIds(first.registry, 'orders').length === 1, 3000, 'first registration');
    await first.close();
    await waitFor(() => s.messages('lookup disconnected').length === 1, 3000, 'disconnect noticed');
    s.engine.channel('later', 'c'); // told to no one now; must be in the re-registration
    s.engine.deleteChannel('orders', 'billing');

    const second = track(await startLookup(first.tcpPort));
    await waitFor(() => producerIds(second.registry, 'later').length === 1, 3000, 're-registration');
    expect(producerIds(second.registry, 'orders')).toEqual(['shard-a']);
    expect(second.registry.channels('orders')).toEqual([]);
    expect(second.registry.channels('later')).toEqual(['c']);
    expect(s.registration.status()[0]).toMatchObject({ state: 'ready', failures: 0 });
    expect(s.messages('lookup disconnected')[0]).toMatchObject({ level: 'warn', lookup: first.address, failures: 1 });
  });

  it('backs off exponentially while a lookup is unreachable, and starts again from the base once it answers', async () => {
    const port = await freePort();
    const s = shard([`127.0.0.1:${port}`], { backoffBaseMs: 20, backoffMaxMs: 160 }, () => 1);
    s.registration.start();
    await waitFor(() => s.messages('lookup unreachable').length >= 6, 5000, 'six failed attempts');
    const delays = s.messages('lookup unreachable').map((e) => e.retryInMs);
    expect(delays.slice(0, 6)).toEqual([20, 40, 80, 160, 160, 160]);
    // Only the first failure of a streak is a warning.
    expect(s.messages('lookup unreachable').map((e) => e.level).slice(0, 3)).toEqual(['warn', 'debug', 'debug']);

    const fake = track(await FakeLookup.start({ port }));
    await waitFor(() => s.registration.status()[0].state === 'ready', 3000, 'connected');
    expect(s.registration.status()[0].failures).toBe(0);
    fake.dropConnections();
    await waitFor(() => s.messages('lookup disconnected').length === 1, 3000, 'disconnect');
    expect(s.messages('lookup disconnected')[0]).toMatchObject({ failures: 1, retryInMs: 20 });
    await waitFor(() => fake.connections === 2 && s.registration.status()[0].state === 'ready', 3000, 'reconnected');
  });

  it('never blocks on a lookup that stops answering: bounded commands, reconnect, fresh re-registration', async () => {
    const fake = track(await FakeLookup.start({ mode: 'identify-only' }));
    const s = shard([`127.0.0.1:${fake.port}`], { maxPending: 5, responseTimeoutMs: 60_000 });
    s.registration.start();
    await waitFor(() => s.registration.status()[0].state === 'ready', 3000, 'ready');
    const started = performance.now();
    for (let i = 0; i < 20; i++) s.engine.topic(`t${i}`);
    expect(performance.now() - started).toBeLessThan(100);
    expect(s.registration.status()[0].pending).toBeLessThanOrEqual(5);
    expect(s.messages('lookup not keeping up, reconnecting')[0]).toMatchObject({ level: 'warn', pending: 5 });
    // On the new connection everything is registered from scratch, past maxPending (it is the snapshot).
    await waitFor(() => fake.connections >= 2 && fake.registrations().filter((c) => c === 'REGISTER t19').length >= 1, 3000, 're-registration');
    await waitFor(() => fake.registrations().slice(fake.registrations().lastIndexOf('IDENTIFY')).length === 21, 3000, 'full snapshot');
  });

  it('treats a lookup that leaves a command unanswered past the response timeout as dead', async () => {
    const fake = track(await FakeLookup.start({ mode: 'hang' }));
    const s = shard([`127.0.0.1:${fake.port}`], { responseTimeoutMs: 150 });
    s.registration.start();
    await waitFor(() => s.messages('lookup unreachable').length >= 1, 3000, 'timeout');
    expect(s.messages('lookup unreachable')[0]).toMatchObject({ reason: 'no answer to IDENTIFY' });
    await waitFor(() => fake.connections >= 2, 3000, 'retry');
    const closing = performance.now();
    await s.registration.close();
    expect(performance.now() - closing).toBeLessThan(200);
  });

  it('asks every lookup for a new topic’s channels, merging them and leaving out #ephemeral ones and lookups that fail', async () => {
    const a = track(await startLookup());
    const b = await startLookup();
    a.registry.createChannel('orders', 'billing');
    a.registry.createChannel('orders', 'live#ephemeral');
    b.registry.createChannel('orders', 'audit');
    b.registry.createChannel('orders', 'billing');
    a.registry.createChannel('payments', 'p1');
    b.registry.createChannel('payments', 'p2');
    const s = shard([a.address, b.address]);
    s.registration.start();
    await waitFor(() => s.registration.status().every((p) => p.state === 'ready'), 3000, 'both connected');
    expect((await s.registration.channelsElsewhere('orders')).sort()).toEqual(['audit', 'billing']);
    expect((await s.registration.channelsElsewhere('payments')).sort()).toEqual(['p1', 'p2']);
    expect(await s.registration.channelsElsewhere('unknown')).toEqual([]);

    // The engine holds the first message of a new topic until those channels exist, so each gets it.
    s.engine.publish('orders', Buffer.from('first'));
    await waitFor(() => s.engine.findChannel('orders', 'audit')?.depth() === 1 && s.engine.findChannel('orders', 'billing')?.depth() === 1, 3000, 'channels');
    expect(s.engine.findChannel('orders', 'live#ephemeral')).toBeUndefined();

    await b.close();
    const t0 = performance.now();
    expect(await s.registration.channelsElsewhere('payments')).toEqual(['p1']);
    expect(performance.now() - t0).toBeLessThan(400);
    expect(s.messages('lookup channels query failed').length).toBeGreaterThan(0);
  });

  it('gives up on a /channels query after the timeout, so a hung lookup delays a new topic only that long', async () => {
    const hung = http.createServer(() => undefined); // never answers
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => { hung.closeAllConnections(); hung.close(() => resolve()); }));
    const fake = track(await FakeLookup.start({ httpPort: (hung.address() as net.AddressInfo).port }));
    const s = shard([`127.0.0.1:${fake.port}`], { httpTimeoutMs: 200 });
    s.registration.start();
    await waitFor(() => s.registration.status()[0].state === 'ready', 3000, 'ready');
    const t0 = performance.now();
    expect(await s.registration.channelsElsewhere('orders')).toEqual([]);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(150);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(s.messages('lookup channels query failed')[0]).toMatchObject({ topic: 'orders', error: 'timeout' });
  });

  it('adds and removes lookups at runtime (PUT /config/nsqlookupd_tcp_addresses)', async () => {
    const a = track(await startLookup());
    const b = track(await startLookup());
    const s = shard([a.address]);
    s.engine.topic('orders');
    s.registration.start();
    await waitFor(() => producerIds(a.registry, 'orders').length === 1, 3000, 'registered with a');
    s.registration.setAddresses([a.address, b.address, a.address]);
    await waitFor(() => producerIds(b.registry, 'orders').length === 1, 3000, 'registered with b');
    s.registration.setAddresses([b.address]);
    await waitFor(() => a.registry.nodes().length === 0, 3000, 'gone from a');
    expect(s.registration.status().map((p) => p.address)).toEqual([b.address]);
    expect(s.messages('removing lookup')).toEqual([expect.objectContaining({ lookup: a.address })]);
    expect(() => s.registration.setAddresses(['no-port'])).toThrow();
    expect(b.registry.nodes()).toHaveLength(1);
  });

  it('close() leaves every lookup and stops reconnecting', async () => {
    const a = track(await startLookup());
    const s = shard([a.address]);
    s.registration.start();
    await waitFor(() => a.registry.nodes().length === 1, 3000, 'connected');
    await s.registration.close();
    await waitFor(() => a.registry.nodes().length === 0, 3000, 'disconnected');
    expect(s.registration.status()).toEqual([]);
    s.engine.topic('after-close'); // no effect, no throw
    expect(await s.registration.channelsElsewhere('x')).toEqual([]);
  });
});
