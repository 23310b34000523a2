// Request bodies read with a limit: refused at once when Content-Length says too much, and as soon
// as a streamed body passes the limit (the rest is not buffered).

import type { IncomingMessage } from 'node:http';
import { ErrorCode, GatewayError } from './errors';

export function readBody(req: IncomingMessage, limit: number, tooBig: ErrorCode): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(new GatewayError(tooBig, { limit }));
  return new Promise((resolve, reject) => {
    let first: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    let size = 0;
    let done = false;
    const onData = (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        reject(new GatewayError(tooBig, { limit }));
        return;
      }
      if (first === undefined) first = chunk;
      else (chunks ??= [first]).push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => {
      if (done) return;
      done = true;
      resolve(chunks ? Buffer.concat(chunks, size) : (first ?? Buffer.alloc(0)));
    });
    // A client that goes away mid-body is not a server error.
    const gone = () => {
      if (done) return;
      done = true;
      reject(new GatewayError('INVALID_BODY', { reason: 'the request was aborted' }));
    };
    req.once('error', gone);
    req.once('close', gone);
  });
}

/** The media type of a Content-Type header, lower-cased, without parameters. */
export function mediaType(req: IncomingMessage): string {
  const ct = req.headers['content-type'];
  if (!ct) return '';
  const semi = ct.indexOf(';');
  return (semi === -1 ? ct : ct.slice(0, semi)).trim().toLowerCase();
}
