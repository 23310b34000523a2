// AUTH and authorization as nsqd does them with --auth-http-address: ask the auth server what a
// secret may do, keep the answer for its ttl, and check each SUB/PUB/MPUB/DPUB against it.

import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { protocolError, V2Errors, type ProtocolError } from '../../wire/nsq-v2-frames';
import { AuthQueryError, AuthState, parseAuthState, type Permission } from './auth-answer';

/*
 * The auth server protocol (nsqd internal/auth): nsqd asks
 *   GET http://<address>/auth?common_name=…&remote_ip=…&secret=…&tls=true|false
 * (or the address as given, if it contains "://"), trying every configured address from a
 * random one on until one answers, and expects 200 with
 *   {"ttl": 3600, "identity": "…", "identity_url": "…",
 *    "authorizations": [{"topic": "…", "channels": ["…"], "permissions": ["subscribe", "publish"]}]}
 * A non-200 answer, bad JSON, ttl ≤ 0, an unknown permission or a pattern that does not compile
 * fails the whole query; the client then gets E_AUTH_FAILED (never the reason).
 *
 * A command is allowed if one authorization grants its permission (SUB → subscribe; PUB, MPUB,
 * DPUB → publish), its topic pattern matches the topic and one of its channel patterns matches
 * the channel. For publish the channel is "" — so, as in nsqd, a publish grant needs a channel
 * pattern that matches the empty string (".*" does; "" and "^$" do too).
 *
 * Where we differ from nsqd, on purpose:
 * - Patterns are ANCHORED: we match ^(?:pattern)$. nsqd's Go regexps are unanchored, so there
 *   "orders" also grants "orders_private" and "old_orders"; here it grants "orders" only. Write
 *   "orders.*" for a prefix. (An empty pattern therefore matches only the empty string.)
 * - Patterns are Go RE2 syntax run by JavaScript's engine. The leading flag groups (?i) (?s)
 *   (?m), \A, \z and (?P<name>…) are translated; constructs the two engines would read
 *   differently (\Q…\E, \pL, [[:alpha:]], \C) or that RE2 rejects (lookaround,
 *   backreferences) fail the query, so a pattern never silently means something else.
 * - Only the configured addresses are ever called: nsqd's retry of a 403 answer at an https
 *   address taken from the answer's body is not done, and redirects are not followed.
 * - Answers over 1 MiB are refused.
 * The answer's validation, pattern translation and decisions are in auth-answer.ts.
 */

/** nsqd's --http-client-connect-timeout and --http-client-request-timeout defaults. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
const MAX_ANSWER_BYTES = 1024 * 1024;

export interface AuthOptions {
  /** --auth-http-address, repeatable: host:port (→ http://host:port/auth) or a full http(s) URL. */
  addresses: string[];
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** --auth-http-request-method (nsqd v1.3): 'get' puts the fields in the query string; 'post' sends them as JSON. */
  method?: 'get' | 'post';
  /** Monotonic milliseconds; ttl expiry is measured on it. */
  now?: () => number;
  /** Picks the address to try first, as nsqd does at random. */
  random?: () => number;
}

/** What nsqd tells the auth server about the connection, read afresh at every query. */
export interface AuthPeer {
  /** The client's IP without port ('' for a unix socket); see remoteIpOf. */
  remoteIp: string;
  tls: boolean;
  /** The TLS client certificate's subject CN, '' without one; see tls.ts peerCommonName. */
  commonName: string;
}

export class AuthConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthConfigError';
  }
}

/** One per shard: the configured auth servers and an HTTP agent with nsqd's timeouts. */
export class AuthClient {
  readonly now: () => number;
  private readonly endpoints: readonly string[];
  private readonly method: 'get' | 'post';
  private readonly requestTimeoutMs: number;
  private readonly random: () => number;
  private readonly agent: Agent | null;

  constructor(opts: AuthOptions) {
    this.endpoints = opts.addresses.map(endpointOf);
    this.method = opts.method ?? 'get';
    this.requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.now = opts.now ?? (() => performance.now());
    this.random = opts.random ?? Math.random;
    this.agent =
      this.endpoints.length === 0
        ? null
        : new Agent({
            connect: { timeout: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS },
            headersTimeout: this.requestTimeoutMs,
            bodyTimeout: this.requestTimeoutMs,
          });
  }

  /** nsqd's IsAuthEnabled: IDENTIFY's auth_required, and whether AUTH and authorization apply at all. */
  get enabled(): boolean {
    return this.endpoints.length > 0;
  }

  /** nsqd's QueryAnyAuthd: every address once, starting at a random one, until one answers validly. */
  async query(peer: AuthPeer, secret: Buffer): Promise<AuthState> {
    const n = this.endpoints.length;
    if (n === 0) throw new AuthQueryError('auth is not enabled');
    const start = Math.floor(this.random() * n) % n;
    const failures: string[] = [];
    for (let i = 0; i < n; i++) {
      const endpoint = this.endpoints[(start + i) % n];
      try {
        return parseAuthState(await this.fetchOnce(endpoint, peer, secret), this.now());
      } catch (err) {
        failures.push(`failed to auth against ${endpoint} - ${(err as Error).message}`);
      }
    }
    throw new AuthQueryError(failures.join('; '));
  }

  async close(): Promise<void> {
    await this.agent?.close();
  }

  private async fetchOnce(endpoint: string, peer: AuthPeer, secret: Buffer): Promise<string> {
    const headers: Record<string, string> = { accept: 'application/vnd.nsq; version=1.0' };
    let url = endpoint;
    let body: string | undefined;
    if (this.method === 'post') {
      // Go's json.Marshal of url.Values: sorted keys, every value a one-element array.
      body =
        `{"common_name":[${goJsonString(peer.commonName)}],"remote_ip":[${goJsonString(peer.remoteIp)}],` +
        `"secret":[${goJsonString(secret.toString('utf8'))}],"tls":["${peer.tls}"]}`;
      headers['content-type'] = 'application/json';
    } else {
      url += '?' + authQueryString(peer, secret);
    }
    const res = await request(url, {
      method: this.method === 'post' ? 'POST' : 'GET',
      headers,
      body,
      dispatcher: this.agent ?? undefined,
      signal: AbortSignal.timeout(this.requestTimeoutMs),
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      const b = chunk as Buffer;
      size += b.length;
      if (size > MAX_ANSWER_BYTES) {
        res.body.destroy();
        throw new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`);
      }
      chunks.push(b);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (res.statusCode !== 200) throw new Error(`got response ${res.statusCode} ${JSON.stringify(text)}`);
    return text;
  }
}

function endpointOf(address: string): string {
  const endpoint = address.includes('://') ? address : `http://${address}/auth`;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new AuthConfigError(`invalid --auth-http-address ${JSON.stringify(address)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new AuthConfigError(`invalid --auth-http-address ${JSON.stringify(address)} (http or https only)`);
  }
  return endpoint;
}

/** Go's url.Values{…}.Encode(): keys sorted, QueryEscape'd values; the secret goes byte for byte. */
export function authQueryString(peer: AuthPeer, secret: Buffer): string {
  return (
    'common_name=' +
    queryEscape(Buffer.from(peer.commonName, 'utf8')) +
    '&remote_ip=' +
    queryEscape(Buffer.from(peer.remoteIp, 'utf8')) +
    '&secret=' +
    queryEscape(secret) +
    '&tls=' +
    (peer.tls ? 'true' : 'false')
  );
}

const HEX = '0123456789ABCDEF';

/** Go's url.QueryEscape over raw bytes: unreserved bytes stay, space becomes '+', the rest %XX. */
function queryEscape(bytes: Buffer): string {
  let out = '';
  for (const c of bytes) {
    if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e) {
      out += String.fromCharCode(c);
    } else if (c === 0x20) {
      out += '+';
    } else {
      out += '%' + HEX[c >> 4] + HEX[c & 15];
    }
  }
  return out;
}

/** Go's json.Marshal of a string: JSON with <, >, &, U+2028 and U+2029 escaped. */
function goJsonString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

// ---- one connection ----

export type AuthOutcome =
  | { readonly ok: true; readonly response: string; readonly state: AuthState }
  | { readonly ok: false; readonly error: ProtocolError; readonly cause?: Error };

export type PublishCommand = 'PUB' | 'MPUB' | 'DPUB';

/**
 * One connection's auth state (nsqd's client.AuthState/AuthSecret). The handler runs the
 * command's state check (V2Errors.wrongState) before calling auth(), and calls authorize()
 * where nsqd calls CheckAuth.
 */
export class ConnectionAuth {
  private state: AuthState | null = null;
  private secret: Buffer | null = null;
  private refreshing: Promise<AuthState> | null = null;

  /** `peer` is asked at every query, so a TLS upgrade or client certificate is seen as nsqd sees it. */
  constructor(
    private readonly client: AuthClient,
    private readonly peer: () => AuthPeer,
  ) {}

  /** nsqd's HasAuthorizations: an answer with at least one authorization. /stats "authed". */
  get authed(): boolean {
    return this.state !== null && this.state.authorizations.length > 0;
  }

  /** /stats auth_identity and auth_identity_url. */
  get identity(): string {
    return this.state?.identity ?? '';
  }

  get identityUrl(): string {
    return this.state?.identityUrl ?? '';
  }

  /**
   * The AUTH command after its state check: the error frame to send (all fatal), or the
   * response JSON. `cause` says why the auth server failed, for the log only; nsqd never tells
   * the client.
   */
  async auth(secret: Buffer): Promise<AuthOutcome> {
    if (this.authed) return { ok: false, error: V2Errors.authAlreadySet() };
    if (!this.client.enabled) return { ok: false, error: V2Errors.authDisabled() };
    this.secret = secret;
    let state: AuthState;
    try {
      state = await this.client.query(this.peer(), secret);
    } catch (err) {
      return { ok: false, error: V2Errors.authFailed(), cause: err as Error };
    }
    this.state = state;
    if (state.authorizations.length === 0) return { ok: false, error: V2Errors.authNoAuthorizations() };
    return { ok: true, response: authResponse(state), state };
  }

  /**
   * nsqd's CheckAuth for SUB (with its channel) and PUB, MPUB, DPUB (channel ''): null when
   * allowed or auth is off, else the fatal error to send. Synchronous while the answer is
   * fresh; a Promise only when it has expired and must be asked again (at most one query in
   * flight per connection). Errors reaching the auth server are logged via `onQueryError`.
   */
  authorize(
    command: 'SUB' | PublishCommand,
    topic: string,
    channel: string,
    onQueryError?: (err: Error) => void,
  ): ProtocolError | null | Promise<ProtocolError | null> {
    if (!this.client.enabled) return null;
    if (!this.authed) return V2Errors.authFirst(command);
    const state = this.state as AuthState;
    if (!state.isExpired(this.client.now())) return decision(state, command, topic, channel);
    return this.refresh().then(
      (fresh) => decision(fresh, command, topic, channel),
      (err: Error) => {
        onQueryError?.(err);
        const failed = V2Errors.authFailed();
        return protocolError(failed.code, failed.text, failed.fatal, command);
      },
    );
  }

  /**
   * The decision alone, refreshing an expired answer first (nsqd's IsAuthorized). False
   * before any answer; rejects with AuthQueryError if the refresh fails.
   */
  async isAuthorized(topic: string, channel: string | null, permission: Permission): Promise<boolean> {
    if (this.state === null) return false;
    const state = this.state.isExpired(this.client.now()) ? await this.refresh() : this.state;
    return state.allows(topic, channel, permission);
  }

  private refresh(): Promise<AuthState> {
    if (this.refreshing === null) {
      const secret = this.secret ?? Buffer.alloc(0);
      this.refreshing = this.client.query(this.peer(), secret).then(
        (state) => {
          this.refreshing = null;
          this.state = state;
          return state;
        },
        (err: unknown) => {
          this.refreshing = null;
          throw err;
        },
      );
    }
    return this.refreshing;
  }
}

/** AUTH's response frame data, as nsqd's json.Marshal writes it. */
export function authResponse(state: AuthState): string {
  return (
    `{"identity":${goJsonString(state.identity)},"identity_url":${goJsonString(state.identityUrl)},` +
    `"permission_count":${state.authorizations.length}}`
  );
}

function decision(state: AuthState, command: 'SUB' | PublishCommand, topic: string, channel: string): ProtocolError | null {
  const allowed = command === 'SUB' ? state.allows(topic, channel, 'subscribe') : state.allows(topic, null, 'publish');
  return allowed ? null : V2Errors.unauthorized(command, topic, channel);
}

/** A granted authorization as client-auth.ts's Authenticator seam sees it. */
export interface AuthSession {
  readonly identity: string;
  readonly identityUrl: string;
  readonly permissionCount: number;
  expired(): boolean;
  /** channel '' means publishing (PUB, MPUB, DPUB), as in nsqd's IsAllowed. */
  allows(topic: string, channel: string): boolean;
}

/**
 * This client behind client-auth.ts's Authenticator seam. The secret arrives there as a string;
 * nsqd sends the AUTH body's raw bytes, which only differ for a secret that is not UTF-8.
 */
export function authenticator(client: AuthClient): {
  authenticate(req: { secret: string; remoteIp: string; tls: boolean; commonName: string }): Promise<AuthSession>;
} {
  return {
    async authenticate(req) {
      const state = await client.query({ remoteIp: req.remoteIp, tls: req.tls, commonName: req.commonName }, Buffer.from(req.secret, 'utf8'));
      return {
        identity: state.identity,
        identityUrl: state.identityUrl,
        permissionCount: state.authorizations.length,
        expired: () => state.isExpired(client.now()),
        allows: (topic, channel) => (channel === '' ? state.allows(topic, null, 'publish') : state.allows(topic, channel, 'subscribe')),
      };
    },
  };
}

/**
 * The remote_ip nsqd sends: the peer's IP without port, IPv4-mapped IPv6 addresses unmapped
 * (Go reports a v4 client on a dual-stack listener as a.b.c.d), '' when there is none.
 */
export function remoteIpOf(socket: net.Socket): string {
  const a = socket.remoteAddress;
  if (!a) return '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}
