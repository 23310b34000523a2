// Errors the client hands to its callers, as values with a stable code (tests and callers branch
// on `code`, never on message text).

export type ClientErrorCode =
  /** The server answered with an error frame; `nsqCode` is nsqd's (E_BAD_TOPIC, E_PUB_FAILED, …). */
  | 'NSQ_ERROR'
  /** The connection failed or closed before the command was answered: it may or may not have been applied. */
  | 'CONNECTION_CLOSED'
  /** Could not connect (refused, timed out, bad handshake). Nothing was sent. */
  | 'CONNECT_FAILED'
  /** The caller closed the producer or consumer. */
  | 'CLOSED'
  /** No answer within the deadline. */
  | 'TIMEOUT'
  /** A lookup could not be queried or answered something unexpected. */
  | 'LOOKUP_FAILED'
  /** The server broke the protocol (bad frame, unexpected answer). */
  | 'PROTOCOL'
  /** A gateway answered an HTTP error; see GatewayCallError for its status and error code. */
  | 'HTTP_ERROR'
  /** A gateway refused a receipt (its lease ended, it is stale…): the message will be delivered again. */
  | 'SETTLE_FAILED';

export class ClientError extends Error {
  override name = 'ClientError';

  constructor(
    readonly code: ClientErrorCode,
    message: string,
    /** For NSQ_ERROR: nsqd's error code. */
    readonly nsqCode = '',
    /** For NSQ_ERROR: whether nsqd closes the connection after it. */
    readonly fatal = true,
  ) {
    super(message);
  }
}

/** A gateway's error answer: the HTTP status and the `error.code` of its JSON body ('' if none). */
export class GatewayCallError extends ClientError {
  override name = 'GatewayCallError';

  constructor(
    readonly status: number,
    readonly apiCode: string,
    message: string,
    /** Seconds the gateway asked us to wait (Retry-After), or null. */
    readonly retryAfterS: number | null = null,
  ) {
    super('HTTP_ERROR', message);
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
