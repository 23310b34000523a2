// The seam between a connection and its bytes: it reads from `input` and writes to `output`.
// A plain connection uses the socket for both; after IDENTIFY negotiates TLS, snappy or deflate
// (nsqd's order: the IDENTIFY answer in the clear, then TLS, then compression) the connection
// swaps in the transport the upgrade returns. The upgrade modules plug in through `Upgrades`.

import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';

export interface Transport {
  /** Emits the client's bytes as 'data' Buffers, then 'end'. */
  readonly input: Readable;
  /** Takes the server's bytes. */
  readonly output: Writable;
}

export function plainTransport(socket: Socket): Transport {
  return { input: socket, output: socket };
}

/** What /stats shows about a TLS connection (nsqd's tls_* client fields). */
export interface TlsInfo {
  cipherSuite: string;
  version: string;
  negotiatedProtocol: string;
  negotiatedProtocolIsMutual: boolean;
  /** The client certificate's common name, if it sent one (nsqd passes it to the auth server). */
  commonName: string;
}

/**
 * Transport upgrades the server can offer; each one absent means the feature is not offered
 * (IDENTIFY answers tls_v1/deflate/snappy false). Each is handed the current transport, whose
 * output has already sent everything written before, and returns the wrapped one.
 */
export interface Upgrades {
  tls?(socket: Socket): Promise<{ transport: Transport; info: TlsInfo }>;
  snappy?(t: Transport): Transport;
  deflate?(t: Transport, level: number): Transport;
}
