// A connection's side of nsqd's --auth-http-address authorization: AUTH with a secret, then
// CheckAuth before SUB/PUB/MPUB/DPUB (refreshing an expired grant first), with nsqd's errors.
// The HTTP client and the permission matching live behind the Authenticator seam.

import { V2Errors, type ProtocolError } from '../../wire/nsq-v2';

/** A client's authorization, as the auth server granted it. */
export interface AuthSession {
  readonly identity: string;
  readonly identityUrl: string;
  readonly permissionCount: number;
  expired(): boolean;
  allows(topic: string, channel: string): boolean;
}

export interface AuthRequest {
  secret: string;
  remoteIp: string;
  tls: boolean;
  commonName: string;
}

export interface Authenticator {
  /** Asks the auth server; rejects on any failure (the client only ever sees "AUTH failed"). */
  authenticate(req: AuthRequest): Promise<AuthSession>;
}

export class ClientAuth {
  private session: AuthSession | null = null;
  private secret = '';

  constructor(
    private readonly auth: Authenticator | null,
    private readonly whoAmI: () => Omit<AuthRequest, 'secret'>,
    private readonly onFailure: (err: unknown) => void,
  ) {}

  /** nsqd's AUTH after the state check: the JSON answer, or the error to send. */
  login(secret: string): ProtocolError | Promise<string | ProtocolError> {
    if (this.session) return V2Errors.authAlreadySet();
    if (!this.auth) return V2Errors.authDisabled();
    this.secret = secret;
    return this.query().then(
      (s) => {
        if (s.permissionCount === 0) return V2Errors.authNoAuthorizations();
        this.session = s;
        return JSON.stringify({ identity: s.identity, identity_url: s.identityUrl, permission_count: s.permissionCount });
      },
      (err: unknown) => this.failed(err),
    );
  }

  /**
   * nsqd's CheckAuth: null when allowed (or auth is off), else the error. An expired grant is
   * asked for again first, so the answer may come later.
   */
  check(command: string, topic: string, channel: string): ProtocolError | null | Promise<ProtocolError | null> {
    if (!this.auth) return null;
    const s = this.session;
    if (!s) return V2Errors.authFirst(command);
    if (!s.expired()) return s.allows(topic, channel) ? null : V2Errors.unauthorized(command, topic, channel);
    return this.query().then(
      (fresh) => {
        this.session = fresh;
        return fresh.allows(topic, channel) ? null : V2Errors.unauthorized(command, topic, channel);
      },
      (err: unknown) => this.failed(err),
    );
  }

  /** /stats fields (nsqd marks them omitempty). */
  describe(stats: Record<string, unknown>): void {
    const s = this.session;
    if (!s) return;
    stats.authed = true;
    if (s.identity) stats.auth_identity = s.identity;
    if (s.identityUrl) stats.auth_identity_url = s.identityUrl;
  }

  private query(): Promise<AuthSession> {
    return this.auth!.authenticate({ secret: this.secret, ...this.whoAmI() });
  }

  private failed(err: unknown): ProtocolError {
    // nsqd never shows the auth server's answer to the client
    this.onFailure(err);
    return V2Errors.authFailed();
  }
}
