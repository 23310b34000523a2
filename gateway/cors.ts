// CORS for browsers on other origins, with an exact allowlist (--cors-origin): an allowed Origin
// is echoed back (never `*`, because credentials — the token cookie — are allowed), every answer
// that depends on Origin says `Vary: Origin`, and preflights get the methods and headers the API
// uses. Requests without an Origin header are untouched.

import type { IncomingMessage, ServerResponse } from 'node:http';

const ALLOW_METHODS = 'GET, POST, PUT, OPTIONS';
const ALLOW_HEADERS = ['authorization', 'content-type', 'idempotency-key', 'last-event-id', 'cache-control'];
const EXPOSE_HEADERS = 'Retry-After, WWW-Authenticate';
const ORIGIN = /^https?:\/\/[^/\s]+$/;

export class Cors {
  private readonly origins: Set<string>;

  constructor(origins: readonly string[]) {
    for (const o of origins) if (!ORIGIN.test(o)) throw new Error(`--cors-origin "${o}": expected scheme://host[:port], no path`);
    this.origins = new Set(origins.map((o) => o.toLowerCase()));
  }

  get enabled(): boolean {
    return this.origins.size > 0;
  }

  /**
   * Adds the CORS headers a request needs. Returns true when it answered the request itself (a
   * preflight), false when the request should go on to its handler.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return false;
    res.setHeader('Vary', 'Origin');
    const allowed = this.origins.has(origin.toLowerCase());
    const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
    if (allowed) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      if (!preflight) res.setHeader('Access-Control-Expose-Headers', EXPOSE_HEADERS);
    }
    if (!preflight) return false;
    req.resume();
    if (!allowed) {
      // Answered without CORS headers, the browser refuses the real request.
      res.writeHead(403, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(JSON.stringify({ error: { code: 'FORBIDDEN', message: 'this origin is not allowed (--cors-origin)', details: { origin } } }));
      return true;
    }
    const asked = String(req.headers['access-control-request-headers'] ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter((h) => h !== '' && ALLOW_HEADERS.includes(h));
    res.writeHead(204, {
      'Access-Control-Allow-Methods': ALLOW_METHODS,
      'Access-Control-Allow-Headers': asked.length > 0 ? asked.join(', ') : ALLOW_HEADERS.join(', '),
      'Access-Control-Max-Age': '600',
      'Content-Length': '0',
    });
    res.end();
    return true;
  }
}
