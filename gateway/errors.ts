// The gateway's one error catalogue and its one renderer: every error a client can see has a
// stable code and a status, and is sent as {"error":{"code","message","details"}}. No stack
// trace ever reaches a client.

import type { ServerResponse } from 'node:http';

export const ERRORS = {
  INVALID_TOPIC: [400, 'topic names match ^[.a-zA-Z0-9_-]+(#ephemeral)?$ and are 1-64 characters'],
  MSG_EMPTY: [400, 'a message needs at least one byte'],
  INVALID_DEFER: [400, 'defer must be a whole number of milliseconds within the limit'],
  INVALID_KEY: [400, 'a routing key is 1-256 characters'],
  INVALID_IDEMPOTENCY_KEY: [400, 'an idempotency key is 1-200 printable ASCII characters'],
  INVALID_JSON: [400, 'the body is not valid JSON'],
  INVALID_BODY: [400, 'the body cannot be read'],
  INVALID_CHANNEL: [400, 'channel names match ^[.a-zA-Z0-9_-]+(#ephemeral)?$ and are 1-64 characters'],
  INVALID_PARAMETER: [400, 'a query parameter is malformed or out of range (details.parameter)'],
  INVALID_DEAD_LETTER_TOPIC: [400, 'the dead-letter topic is not a valid topic name, or is the topic itself'],
  RECEIPT_INVALID: [400, 'the receipt is malformed or was not signed by this cluster'],
  UNAUTHENTICATED: [401, 'a valid API key is required (Authorization: Bearer <key>)'],
  SIGNATURE_MISSING: [401, 'this topic needs a signed webhook and the signature is missing'],
  SIGNATURE_INVALID: [401, 'the webhook signature does not match'],
  FORBIDDEN: [403, 'this API key may not do that'],
  NOT_FOUND: [404, 'no such endpoint'],
  TOPIC_NOT_FOUND: [404, 'no shard holds this topic'],
  CHANNEL_NOT_FOUND: [404, 'no shard of this topic has this channel'],
  SHARD_NOT_FOUND: [404, 'no such shard is known to this gateway'],
  METHOD_NOT_ALLOWED: [405, 'method not allowed on this endpoint'],
  RECEIPT_STALE: [409, 'the message was delivered again since this receipt was issued; the newer delivery is untouched'],
  NOT_IN_FLIGHT: [409, 'the message is no longer in flight: already acked or requeued, or its lease ran out'],
  SHARD_UNKNOWN: [409, 'the receipt names a shard the lookups do not know (any more)'],
  MSG_TOO_BIG: [413, 'the message is larger than the limit'],
  BODY_TOO_BIG: [413, 'the request body is larger than the limit'],
  UNSUPPORTED_MEDIA_TYPE: [415, 'unsupported Content-Type'],
  VALIDATION_FAILED: [422, 'the request body does not match its schema'],
  SCHEMA_MISMATCH: [422, "the message does not match the topic's schema"],
  TOO_MANY_REQUESTS: [429, 'too many publishes waiting; retry shortly'],
  RATE_LIMITED: [429, 'this API key is over its request rate or concurrency limit; retry after Retry-After seconds'],
  INTERNAL: [500, 'internal error'],
  ACTION_FAILED: [502, 'the action failed on some or all shards (see details.steps)'],
  NO_SHARD: [503, 'no shard is available'],
  SHARD_UNAVAILABLE: [503, 'every shard tried failed'],
  TOO_MANY_VIEWERS: [503, 'too many live admin viewers on this gateway'],
  CONSUME_DISABLED: [503, 'consuming is off on this gateway: it was started without --receipt-secret'],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrorCode = keyof typeof ERRORS;

export class GatewayError extends Error {
  readonly status: number;
  constructor(readonly code: ErrorCode, readonly details: Record<string, unknown> = {}, message?: string) {
    super(message ?? ERRORS[code][1]);
    this.status = ERRORS[code][0];
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details: Record<string, unknown> };
}

export function errorBody(err: GatewayError): ErrorBody {
  return { error: { code: err.code, message: err.message, details: err.details } };
}

/** Anything thrown → a GatewayError (unknown errors become INTERNAL; their text stays in the log). */
export function toGatewayError(err: unknown): GatewayError {
  return err instanceof GatewayError ? err : new GatewayError('INTERNAL');
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers?: Record<string, string>): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify(value);
  const h: Record<string, string | number> = { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) };
  if (headers) Object.assign(h, headers);
  res.writeHead(status, h);
  res.end(body);
}

/** Renders an error; the body of a request answered before it was read is not read (the connection closes). */
export function sendError(res: ServerResponse, err: GatewayError, requestComplete = true): void {
  const headers: Record<string, string> = {};
  // no shard able to take it right now is as temporary as a full queue: tell the client when to retry
  if (err.status === 429 || err.code === 'NO_SHARD' || err.code === 'SHARD_UNAVAILABLE' || err.code === 'TOO_MANY_VIEWERS') headers['Retry-After'] = String(typeof err.details.retry_after_s === 'number' ? err.details.retry_after_s : 1);
  if (err.status === 401 && err.code === 'UNAUTHENTICATED') headers['WWW-Authenticate'] = 'Bearer';
  if (!requestComplete) headers['Connection'] = 'close';
  sendJson(res, err.status, errorBody(err), headers);
}
