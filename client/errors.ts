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
  | 'PROTOCOL';

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

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
