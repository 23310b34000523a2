// The lookup's TCP side: nodes connect, send "  V1", IDENTIFY themselves and REGISTER what they hold.
// One LookupConnection per socket turns decoded commands into registry calls, as nsqlookupd's LookupProtocolV1 does.

import net from 'node:net';
import type { Logger } from '../runtime/logger';
import {
  DecodedItem,
  LookupCommand,
  LookupError,
  LookupV1Decoder,
  encodeResponse,
  lookupError,
  parseIdentifyBody,
  parseTopicChannel,
  toGoJson,
} from '../wire/lookup-v1';
import type { Peer, Registry } from './registry';

/** What the lookup tells a node about itself in answer to IDENTIFY. */
export interface LookupSelfInfo {
  broadcastAddress: string;
  hostname: string;
  version: string;
  /** The real bound ports, known only once both servers listen. */
  tcpPort(): number;
  httpPort(): number;
}

export interface TcpServerDeps {
  registry: Registry;
  self: LookupSelfInfo;
  logger: Logger;
}

const OK = encodeResponse('OK');
/** Stop reading from a client that does not read our replies once this much is queued. */
const MAX_PENDING_WRITE = 1024 * 1024;

export class LookupConnection {
  private readonly decoder = new LookupV1Decoder();
  private peer: Peer | null = null;
  private closed = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly deps: TcpServerDeps,
  ) {
    socket.on('data', (chunk: Buffer) => this.handleItems(this.decoder.push(chunk)));
    socket.on('end', () => {
      this.handleItems(this.decoder.end());
      this.shutdown();
    });
    socket.on('drain', () => socket.resume());
    socket.on('error', (err) => deps.logger.debug('tcp connection error', { remote: this.remote(), error: err.message }));
    socket.on('close', () => this.cleanup());
  }

  private remote(): string {
    return formatAddress(this.socket.remoteAddress, this.socket.remotePort);
  }

  private handleItems(items: DecodedItem[]): void {
    for (const item of items) {
      if (this.closed) return;
      if (item.type === 'error') this.sendError(item.error);
      else this.execute(item.command);
    }
    if (!this.closed && this.socket.writableLength > MAX_PENDING_WRITE) this.socket.pause();
  }

  private execute(command: LookupCommand): void {
    const result = this.dispatch(command);
    if (Buffer.isBuffer(result)) this.socket.write(result);
    else this.sendError(result);
  }

  private dispatch(command: LookupCommand): Buffer | LookupError {
    switch (command.name) {
      case 'PING':
        // nsqlookupd answers OK to a PING even before IDENTIFY.
        if (this.peer) this.deps.registry.ping(this.peer);
        return OK;
      case 'IDENTIFY':
        return this.identify(command.body);
      case 'REGISTER':
      case 'UNREGISTER':
        return this.registration(command.name, command.params);
    }
  }

  private identify(body: Buffer): Buffer | LookupError {
    const parsed = parseIdentifyBody(body);
    if (!parsed.ok) return parsed.error;
    const remote = this.remote();
    this.peer = this.deps.registry.identify({ id: remote, remoteAddress: remote, ...parsed.info });
    this.deps.logger.info('node identified', {
      remote,
      broadcastAddress: parsed.info.broadcastAddress,
      tcpPort: parsed.info.tcpPort,
      httpPort: parsed.info.httpPort,
      version: parsed.info.version,
    });
    return encodeResponse(this.selfInfoJson());
  }

  /** Keys in the order Go's json.Marshal writes a map: sorted. */
  private selfInfoJson(): string {
    const { self } = this.deps;
    return toGoJson({
      broadcast_address: self.broadcastAddress,
      hostname: self.hostname,
      http_port: self.httpPort(),
      tcp_port: self.tcpPort(),
      version: self.version,
    });
  }

  private registration(name: 'REGISTER' | 'UNREGISTER', params: string[]): Buffer | LookupError {
    // nsqlookupd checks IDENTIFY before it looks at the arguments.
    if (this.peer === null) return lookupError('E_INVALID', 'client must IDENTIFY');
    const args = parseTopicChannel(name, params);
    if (!args.ok) return args.error;
    const { registry, logger } = this.deps;
    if (name === 'REGISTER') registry.register(this.peer, args.topic, args.channel);
    else registry.unregister(this.peer, args.topic, args.channel);
    logger.info(name === 'REGISTER' ? 'registered' : 'unregistered', { remote: this.peer.id, topic: args.topic, channel: args.channel });
    return OK;
  }

  private sendError(error: LookupError): void {
    this.deps.logger.warn('protocol error', { remote: this.remote(), error: error.message });
    this.socket.write(encodeResponse(error.message));
    if (error.fatal) this.shutdown();
  }

  /** Flushes what was written, then closes both directions, as nsqlookupd's conn.Close() after the reply. */
  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end(() => this.socket.destroy());
  }

  private cleanup(): void {
    this.closed = true;
    if (this.peer === null) return;
    this.deps.registry.removePeer(this.peer.id);
    this.deps.logger.info('node disconnected', { remote: this.peer.id });
    this.peer = null;
  }
}

export interface LookupTcpServer {
  start(host: string, port: number): Promise<{ host: string; port: number }>;
  close(): Promise<void>;
}

export function createTcpServer(deps: TcpServerDeps): LookupTcpServer {
  const sockets = new Set<net.Socket>();
  // allowHalfOpen: a client that half-closes mid-IDENTIFY still gets nsqlookupd's E_BAD_BODY reply.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    new LookupConnection(socket, deps);
  });
  return {
    start: (host, port) => listen(server, host, port),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

export function listen(server: net.Server, host: string, port: number): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const addr = server.address() as net.AddressInfo;
      resolve({ host: addr.address, port: addr.port });
    });
  });
}

/** "ip:port" the way Go's net.Addr.String() writes it: IPv4-mapped IPv6 as plain IPv4, other IPv6 in brackets. */
export function formatAddress(host: string | undefined, port: number | undefined): string {
  let h = host ?? '';
  if (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(h)) h = h.slice(7);
  return h.includes(':') ? `[${h}]:${port ?? 0}` : `${h}:${port ?? 0}`;
}
