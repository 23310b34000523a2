// A minimal router over node:http that answers the way nsqd's HTTP API does: JSON errors as
// {"message":"CODE"}, "OK" bodies as text, 404 NOT_FOUND / 405 METHOD_NOT_ALLOWED, and request
// bodies read with a size limit that is enforced before (Content-Length) and while reading.

import type { IncomingMessage, ServerResponse } from 'node:http';

export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, readonly extra?: Record<string, unknown>) {
    super(code);
  }
}

export interface Request {
  req: IncomingMessage;
  res: ServerResponse;
  path: string;
  query: URLSearchParams;
  /** Path parameters (`/config/:opt` → { opt }). */
  params: Record<string, string>;
}

/** Marks any value (a bare string or number too) to be sent as JSON. */
export class Json {
  constructor(readonly value: unknown) {}
}

/** JSON already rendered by the handler (a hot path's answer), sent as JSON without re-encoding. */
export class JsonText {
  constructor(readonly text: string) {}
}

/** What a handler returns: text, raw bytes, a JSON value, or nothing (an empty 200). */
export type Reply = string | Buffer | object | null | undefined;
export type Handler = (r: Request) => Reply | Promise<Reply>;

interface Route {
  method: string;
  parts: string[];
  handler: Handler;
}

export class Router {
  private readonly routes: Route[] = [];

  on(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, parts: pattern.split('/'), handler });
    return this;
  }

  /** Serves one request; never throws (errors become JSON answers). */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
    const parts = path.split('/');
    let pathMatched = false;
    for (const route of this.routes) {
      const params = match(route.parts, parts);
      if (!params) continue;
      pathMatched = true;
      if (route.method !== req.method) continue;
      this.run(route.handler, { req, res, path, query, params });
      return;
    }
    drain(req, res);
    if (pathMatched) sendError(res, new HttpError(405, 'METHOD_NOT_ALLOWED'));
    else sendError(res, new HttpError(404, 'NOT_FOUND'));
  }

  private run(handler: Handler, r: Request): void {
    let out: Reply | Promise<Reply>;
    try {
      out = handler(r);
    } catch (err) {
      fail(r, err);
      return;
    }
    if (out instanceof Promise) out.then((v) => send(r.res, 200, v), (err: unknown) => fail(r, err));
    else send(r.res, 200, out);
  }
}

function match(pattern: string[], parts: string[]): Record<string, string> | null {
  if (pattern.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p.startsWith(':')) params[p.slice(1)] = decodeURIComponent(parts[i]);
    else if (p !== parts[i]) return null;
  }
  return params;
}

function fail(r: Request, err: unknown): void {
  drain(r.req, r.res);
  if (err instanceof HttpError) sendError(r.res, err);
  else {
    r.res.emit('sluice:internal-error', err);
    sendError(r.res, new HttpError(500, 'INTERNAL_ERROR'));
  }
}

/** An answer sent before the body was read closes the connection, so no more of it is read. */
function drain(req: IncomingMessage, res: ServerResponse): void {
  if (req.complete) return;
  if (!res.headersSent) res.setHeader('Connection', 'close');
  req.resume();
}

const NSQ_HEADER = 'nsq; version=1.0';

export function send(res: ServerResponse, status: number, v: Reply): void {
  if (res.headersSent || res.destroyed) return;
  let body: string | Buffer;
  let type: string | undefined;
  if (v === null || v === undefined) body = '';
  else if (typeof v === 'string') body = v;
  else if (Buffer.isBuffer(v)) body = v;
  else if (v instanceof JsonText) {
    body = v.text;
    type = 'application/json; charset=utf-8';
  } else {
    body = JSON.stringify(v instanceof Json ? v.value : v);
    type = 'application/json; charset=utf-8';
  }
  const headers: Record<string, string | number> = {
    'X-NSQ-Content-Type': NSQ_HEADER,
    'Content-Length': Buffer.byteLength(body),
  };
  if (type) headers['Content-Type'] = type;
  else if (typeof body === 'string' && body !== '') headers['Content-Type'] = 'text/plain; charset=utf-8';
  res.writeHead(status, headers);
  res.end(body);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  send(res, err.status, { message: err.code, ...err.extra });
}

/**
 * Reads the request body, refusing more than `limit` bytes: at once when Content-Length says so,
 * otherwise as soon as the stream passes the limit (the rest is not buffered).
 */
export function readBody(req: IncomingMessage, limit: number, tooBig: string): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(new HttpError(413, tooBig));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        reject(new HttpError(413, tooBig));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    });
    req.on('error', (err) => {
      if (done) return;
      done = true;
      reject(err);
    });
  });
}
