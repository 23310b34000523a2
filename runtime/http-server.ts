// Options every HTTP server of Sluice is created with: bounds on how long a client may take to
// send its request headers and its whole request, so slowloris connections are closed.

import type { ServerOptions } from 'node:http';
import { flag } from './config';

export interface HttpTimeouts {
  /** Time a client has to send its complete request headers (node: headersTimeout). */
  headersTimeoutMs: number;
  /** Time a client has to send its complete request, body included (node: requestTimeout). */
  requestTimeoutMs: number;
}

// node's defaults (60 s / 300 s, checked every 30 s) let one client hold a socket for minutes.
export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = { headersTimeoutMs: 10_000, requestTimeoutMs: 60_000 };

/** The two flags, for every program's flag table. */
export const httpTimeoutFlags = {
  headerTimeout: flag.duration(DEFAULT_HTTP_TIMEOUTS.headersTimeoutMs, 'time an HTTP client has to send its request headers before the connection is closed'),
  requestTimeout: flag.duration(DEFAULT_HTTP_TIMEOUTS.requestTimeoutMs, 'time an HTTP client has to send its whole request (headers and body); responses may take longer'),
};

export function httpServerOptions(keepAliveTimeout: number, t: Partial<HttpTimeouts> = {}): ServerOptions {
  const headersTimeout = t.headersTimeoutMs ?? DEFAULT_HTTP_TIMEOUTS.headersTimeoutMs;
  // node requires requestTimeout >= headersTimeout (0 = off for either)
  const requestTimeout = Math.max(t.requestTimeoutMs ?? DEFAULT_HTTP_TIMEOUTS.requestTimeoutMs, headersTimeout);
  return {
    keepAliveTimeout,
    headersTimeout,
    requestTimeout,
    // how often node looks for connections past those deadlines (its default: 30 s)
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 4) || 1000)),
  };
}
