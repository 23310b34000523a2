// The TLS upgrade IDENTIFY negotiates (tls_v1): nsqd's --tls-* flags turned into a server
// context, the server-side upgrade of a connected socket, and the TLS fields of /stats.

import { readFileSync } from 'node:fs';
import type net from 'node:net';
import tls from 'node:tls';

/**
 * nsqd's --tls-client-auth-policy: '' asks for no client certificate, 'require' demands one
 * but does not verify it (Go's RequireAnyClientCert), 'require-verify' demands one that chains
 * to --tls-root-ca-file, or to the system roots without it (RequireAndVerifyClientCert).
 */
export type TlsClientAuthPolicy = '' | 'require' | 'require-verify';

/** nsqd gives the handshake 5 s (client_v2.go UpgradeTLS). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 5000;

/** The flags, by nsqd's names: --tls-cert, --tls-key, --tls-root-ca-file, --tls-client-auth-policy, --tls-min-version, --tls-required. */
export interface TlsOptions {
  tlsCert: string;
  tlsKey: string;
  tlsRootCaFile: string;
  tlsClientAuthPolicy: string;
  /** 'tls1.0' | 'tls1.1' | 'tls1.2' | 'tls1.3', or '' for Node's default (TLS 1.2). */
  tlsMinVersion: string;
  /** --tls-required: refuse every command but IDENTIFY until the connection is TLS. */
  tlsRequired: boolean;
  handshakeTimeoutMs?: number;
}

export class TlsConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsConfigError';
  }
}

export type TlsHandshakeErrorCode = 'E_TLS_HANDSHAKE' | 'E_TLS_NO_CLIENT_CERT' | 'E_TLS_CLIENT_CERT_UNTRUSTED';

/** The upgrade failed and the connection is closed (or being closed). nsqd logs it and drops the client. */
export class TlsHandshakeError extends Error {
  constructor(readonly code: TlsHandshakeErrorCode, message: string) {
    super(message);
    this.name = 'TlsHandshakeError';
  }
}

/** What IDENTIFY and the TLS policy check need to know, plus the upgrade itself. */
export interface ServerTls {
  readonly policy: TlsClientAuthPolicy;
  /** --tls-required as nsqd resolves it: any client auth policy implies it. */
  readonly required: boolean;
  readonly minVersion: tls.SecureVersion | undefined;
  /** Resolves once the handshake is done and the client certificate passed the policy. */
  upgrade(socket: net.Socket, leftover?: Buffer): Promise<tls.TLSSocket>;
}

/**
 * nsqd's buildTLSConfig: null when neither --tls-cert nor --tls-key is set (the shard then
 * answers tls_v1:false), an error for a half-configured or unreadable setup. Reads the files
 * once; every upgrade shares the one context.
 */
export function buildServerTls(opts: TlsOptions, readFile: (path: string) => Buffer = readFileSync): ServerTls | null {
  const policy = parsePolicy(opts.tlsClientAuthPolicy);
  const minVersion = parseTlsMinVersion(opts.tlsMinVersion);
  const required = opts.tlsRequired || policy !== '';
  if (opts.tlsCert === '' && opts.tlsKey === '') {
    if (required) throw new TlsConfigError('cannot require TLS client connections without TLS key and cert');
    return null;
  }
  if (opts.tlsCert === '' || opts.tlsKey === '') throw new TlsConfigError('failed to build TLS config - both --tls-cert and --tls-key are needed');
  const read = (flag: string, path: string): Buffer => {
    try {
      return readFile(path);
    } catch (err) {
      throw new TlsConfigError(`failed to build TLS config - ${flag} ${path}: ${(err as Error).message}`);
    }
  };
  const cert = read('--tls-cert', opts.tlsCert);
  const key = read('--tls-key', opts.tlsKey);
  const ca = opts.tlsRootCaFile === '' ? undefined : read('--tls-root-ca-file', opts.tlsRootCaFile);
  let server: tls.Server;
  try {
    server = tls.createServer({
      cert,
      key,
      ca,
      minVersion,
      requestCert: policy !== '',
      // Verification is judged in settle() instead, so a refusal carries its reason (Node would
      // otherwise drop the socket silently) and 'require' can accept an unverified certificate.
      rejectUnauthorized: false,
      handshakeTimeout: opts.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS,
    });
  } catch (err) {
    throw new TlsConfigError(`failed to build TLS config - ${(err as Error).message}`);
  }
  return new TlsUpgrader(server, policy, required, minVersion, opts.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS);
}

/**
 * Upgrades a connected client socket, server side, right after the IDENTIFY response has been
 * written on it. Before calling: take your 'data'/'readable' listeners off `socket`, and pass
 * any bytes you already read past the IDENTIFY command as `leftover` (they belong to the TLS
 * stream; nsqd drops them, so passing nothing is faithful too). Resolves with the TLS socket to
 * read and write from then on (send "OK" on it, as nsqd does); rejects with TlsHandshakeError,
 * the connection closed, if the handshake fails, times out (5 s, as nsqd) or the client
 * certificate fails the policy.
 *
 * From the call on, `socket` belongs to the TLS socket: end or destroy the connection through
 * the TLS socket only. Destroying the raw socket and then the TLS socket crashes Node 20
 * (a segmentation fault; the TLS layer still uses the handle the raw socket closed).
 */
export function upgradeServerSocket(socket: net.Socket, ctx: ServerTls, leftover?: Buffer): Promise<tls.TLSSocket> {
  return ctx.upgrade(socket, leftover);
}

interface Pending {
  resolve(t: tls.TLSSocket): void;
  reject(err: TlsHandshakeError): void;
}

const closedEarly = (): TlsHandshakeError => new TlsHandshakeError('E_TLS_HANDSHAKE', 'TLS handshake failed - connection closed');

/**
 * One tls.Server (never listening) per configuration: sockets are handed to it through its
 * documented 'connection' event, so Node's server-side handshake, timeout and certificate
 * checks apply and the context is built once. Its events name the TLS socket, not ours, so
 * pending upgrades are found again by the TCP 4-tuple, unique among live connections; a
 * failure whose socket has already lost its addresses is settled by the raw socket's 'close',
 * which follows every failed handshake.
 */
class TlsUpgrader implements ServerTls {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly server: tls.Server,
    readonly policy: TlsClientAuthPolicy,
    readonly required: boolean,
    readonly minVersion: tls.SecureVersion | undefined,
    private readonly handshakeTimeoutMs: number,
  ) {
    server.on('secureConnection', (t: tls.TLSSocket) => this.settle(t));
    server.on('tlsClientError', (err: Error, t: tls.TLSSocket) => {
      const key = tupleKey(t);
      const p = key === null ? undefined : this.pending.get(key);
      p?.reject(new TlsHandshakeError('E_TLS_HANDSHAKE', `TLS handshake failed - ${err.message}`));
      // Node leaves some of these (the handshake timeout) open; the TLS socket owns the connection.
      t.destroy();
    });
  }

  upgrade(socket: net.Socket, leftover?: Buffer): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      const key = tupleKey(socket);
      if (key === null || socket.destroyed) {
        socket.destroy();
        reject(closedEarly());
        return;
      }
      let settled = false;
      const finish = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(backstop);
        socket.removeListener('close', onClose);
        this.pending.delete(key);
        return true;
      };
      const onClose = (): void => {
        if (finish()) reject(closedEarly());
      };
      // Node's handshakeTimeout ends the handshake (see tlsClientError); this only makes sure the promise settles.
      const backstop = setTimeout(() => {
        if (finish()) reject(new TlsHandshakeError('E_TLS_HANDSHAKE', `TLS handshake timed out after ${this.handshakeTimeoutMs} ms`));
      }, this.handshakeTimeoutMs + 1000);
      this.pending.set(key, {
        resolve: (t) => {
          if (finish()) resolve(t);
        },
        reject: (err) => {
          if (finish()) reject(err);
        },
      });
      socket.once('close', onClose);
      if (leftover && leftover.length > 0) socket.unshift(leftover);
      this.server.emit('connection', socket);
    });
  }

  private settle(t: tls.TLSSocket): void {
    const key = tupleKey(t);
    const p = key === null ? undefined : this.pending.get(key);
    if (!p) {
      t.destroy();
      return;
    }
    const refusal = this.checkClientCertificate(t);
    if (refusal) {
      t.destroy();
      p.reject(refusal);
    } else {
      p.resolve(t);
    }
  }

  private checkClientCertificate(t: tls.TLSSocket): TlsHandshakeError | null {
    if (this.policy === '') return null;
    if (t.getPeerX509Certificate() === undefined) {
      return new TlsHandshakeError('E_TLS_NO_CLIENT_CERT', 'TLS handshake failed - client sent no certificate');
    }
    if (this.policy === 'require-verify' && !t.authorized) {
      return new TlsHandshakeError(
        'E_TLS_CLIENT_CERT_UNTRUSTED',
        `TLS handshake failed - client certificate not verified (${String(t.authorizationError)})`,
      );
    }
    return null;
  }
}

function tupleKey(s: net.Socket): string | null {
  const { remoteAddress, remotePort, localAddress, localPort } = s;
  if (remoteAddress === undefined || remotePort === undefined) return null;
  return `${remoteAddress}|${remotePort}|${localAddress ?? ''}|${localPort ?? ''}`;
}

function parsePolicy(text: string): TlsClientAuthPolicy {
  // nsqd treats any other value as "no client certificate" (yet still requires TLS); a typo
  // there would silently turn client authentication off, so we refuse it instead.
  if (text === '' || text === 'require' || text === 'require-verify') return text;
  throw new TlsConfigError(`unknown --tls-client-auth-policy ${JSON.stringify(text)} (want '', 'require' or 'require-verify')`);
}

const MIN_VERSIONS: Record<string, tls.SecureVersion> = {
  'tls1.0': 'TLSv1',
  'tls1.1': 'TLSv1.1',
  'tls1.2': 'TLSv1.2',
  'tls1.3': 'TLSv1.3',
};

/**
 * nsqd's --tls-min-version values, case-insensitive. nsqd defaults to tls1.0; an empty value
 * here keeps Node's default (TLS 1.2), and ssl3.0 cannot be had from Node's OpenSSL at all.
 * OpenSSL 3 may still refuse 1.0/1.1 handshakes at its default security level.
 */
export function parseTlsMinVersion(text: string): tls.SecureVersion | undefined {
  const v = text.toLowerCase();
  if (v === '') return undefined;
  const found = MIN_VERSIONS[v];
  if (found) return found;
  if (v === 'ssl3.0') throw new TlsConfigError('--tls-min-version ssl3.0 is not supported');
  throw new TlsConfigError(`unknown tlsVersionOption ${JSON.stringify(text)}`);
}

/** The TLS fields of a client in nsqd's /stats (ClientV2Stats); zero values when not TLS. */
export interface TlsStats {
  tls: boolean;
  tls_cipher_suite: string;
  tls_version: string;
  tls_negotiated_protocol: string;
  tls_negotiated_protocol_is_mutual: boolean;
}

const VERSION_NAMES: Record<string, string> = {
  TLSv1: 'TLS1.0',
  'TLSv1.1': 'TLS1.1',
  'TLSv1.2': 'TLS1.2',
  'TLSv1.3': 'TLS1.3',
};

export const NO_TLS_STATS: Readonly<TlsStats> = Object.freeze({
  tls: false,
  tls_cipher_suite: '',
  tls_version: '',
  tls_negotiated_protocol: '',
  tls_negotiated_protocol_is_mutual: false,
});

/**
 * nsqd fills these from Go's tls.ConnectionState: the suite's IANA name (Go's constant names;
 * nsqd prints "Unknown <id>" for suites outside its list, TLS 1.3 ones included — we give the
 * IANA name for every suite), the version as "TLS1.2"/"TLS1.3", the ALPN protocol (nsqd offers
 * none, so ""), and NegotiatedProtocolIsMutual, which Go reports as true on every connection.
 */
export function tlsStats(socket: tls.TLSSocket | null): TlsStats {
  if (socket === null) return { ...NO_TLS_STATS };
  const cipher = socket.getCipher();
  const protocol = socket.getProtocol() ?? '';
  return {
    tls: true,
    tls_cipher_suite: cipher?.standardName ?? cipher?.name ?? '',
    tls_version: VERSION_NAMES[protocol] ?? `Unknown ${protocol}`,
    tls_negotiated_protocol: typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : '',
    tls_negotiated_protocol_is_mutual: true,
  };
}

/** What the connection keeps about its TLS session (structurally transport.ts's TlsInfo). */
export interface TlsInfo {
  cipherSuite: string;
  version: string;
  negotiatedProtocol: string;
  negotiatedProtocolIsMutual: boolean;
  commonName: string;
}

export function tlsInfo(socket: tls.TLSSocket): TlsInfo {
  const s = tlsStats(socket);
  return {
    cipherSuite: s.tls_cipher_suite,
    version: s.tls_version,
    negotiatedProtocol: s.tls_negotiated_protocol,
    negotiatedProtocolIsMutual: s.tls_negotiated_protocol_is_mutual,
    commonName: peerCommonName(socket),
  };
}

/**
 * The `Upgrades.tls` seam: upgrade, then hand back the TLS socket as both streams with the
 * session's info (read once, after the handshake, as it never changes).
 */
export function tlsUpgrade(
  ctx: ServerTls,
): (socket: net.Socket, leftover?: Buffer) => Promise<{ transport: { input: tls.TLSSocket; output: tls.TLSSocket }; info: TlsInfo }> {
  return async (socket, leftover) => {
    const t = await ctx.upgrade(socket, leftover);
    return { transport: { input: t, output: t }, info: tlsInfo(t) };
  };
}

/** The client certificate's subject CN (the first, if several), '' without one: the auth server's common_name. */
export function peerCommonName(socket: tls.TLSSocket | null): string {
  if (socket === null) return '';
  const cert = socket.getPeerCertificate();
  const cn: unknown = cert && cert.subject ? cert.subject.CN : undefined;
  if (typeof cn === 'string') return cn;
  if (Array.isArray(cn) && typeof cn[0] === 'string') return cn[0];
  return '';
}
