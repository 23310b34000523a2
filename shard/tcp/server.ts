// The NSQ TCP protocol V2 listener: accepts sockets, gives each one a Connection, and knows
// them all for /stats `producers` and for a clean shutdown (nsqd's tcp.go and protocol list).

import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { parseHostPort } from '../../runtime/config';
import type { Logger } from '../../runtime/logger';
import { ENGINE_VERSION, type Engine } from '../engine/engine';
import type { Authenticator } from './client-auth';
import { Connection, type ConnectionContext, type ProtocolOptions } from './connection';
import type { ServerFeatures } from './identify';
import type { Upgrades } from './transport';

export interface TcpServerOptions extends ProtocolOptions {
  /** host:port; port 0 picks a free one. */
  address: string;
  /** --deflate, --max-deflate-level, --snappy: offered only when the upgrade is given too (as TLS needs a cert). */
  deflate: boolean;
  maxDeflateLevel: number;
  snappy: boolean;
}

export interface TcpServerDeps {
  engine: Engine;
  logger: Logger;
  upgrades?: Upgrades;
  auth?: Authenticator | null;
  /** Monotonic milliseconds (heartbeat deadlines). */
  now?: () => number;
}

/** How long close() waits for clients to take their last bytes before cutting them off. */
const CLOSE_GRACE_MS = 2000;

export class TcpServer {
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();
  private readonly sockets = new Set<net.Socket>();
  private readonly ctx: ConnectionContext;
  private nextId = 0;
  private closing = false;

  constructor(private readonly opts: TcpServerOptions, deps: TcpServerDeps) {
    const upgrades = deps.upgrades ?? {};
    const auth = deps.auth ?? null;
    const features: ServerFeatures = {
      version: ENGINE_VERSION,
      maxRdyCount: opts.maxRdyCount,
      maxMsgTimeoutMs: opts.maxMsgTimeoutMs,
      tls: !!upgrades.tls,
      deflate: opts.deflate && !!upgrades.deflate,
      maxDeflateLevel: opts.maxDeflateLevel,
      snappy: opts.snappy && !!upgrades.snappy,
      authRequired: auth !== null,
    };
    this.ctx = {
      engine: deps.engine,
      opts,
      features,
      upgrades,
      auth,
      logger: deps.logger,
      now: deps.now ?? (() => performance.now()),
      closed: (c) => this.connections.delete(c),
    };
    // Go's listener defaults, which nsqd keeps: no Nagle delay, TCP keep-alive every 15 s
    this.server = net.createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 15_000 }, (socket) => this.accept(socket));
  }

  async start(): Promise<AddressInfo> {
    const { host, port } = parseHostPort(this.opts.address);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.server.on('error', (err) => this.ctx.logger.error('tcp server error', { error: err.message }));
    return this.server.address() as AddressInfo;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) return void socket.destroy();
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const c = new Connection(++this.nextId, socket, this.ctx);
    if (!socket.destroyed) this.connections.add(c);
    this.ctx.logger.debug('client connected', { client: c.remoteAddress, id: c.id });
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** nsqd's GetProducerStats: every connection that has published, with its pub_counts. */
  producers(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const c of this.connections) if (c.isProducer) out.push(c.describe());
    return out;
  }

  /**
   * Stops listening and ends every connection: in-flight messages go back to their channels at
   * once (so the engine persists them as ready), buffered output is written, sockets are closed.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const listening = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of [...this.connections]) c.close();
    const deadline = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, CLOSE_GRACE_MS);
    await Promise.all([...this.sockets].map((s) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())))));
    clearTimeout(deadline);
    await listening;
  }
}
