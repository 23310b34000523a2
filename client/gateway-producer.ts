// GatewayProducer: publishes through a Sluice gateway with POST /v1/topics/{t}/batch (a JSON array,
// all or nothing per request). A batch larger than `maxBatchBytes` once encoded goes as several
// requests, one after another. Busy answers (429, 502-504) are retried when the gateway says
// (Retry-After), connection failures with a doubling wait; any other error answer is final.
// Like MPUB over TCP, a request whose answer was lost is sent again: a message may arrive twice.

import { isUtf8 } from 'node:buffer';
import { ClientError, errorText, GatewayCallError } from './errors';
import { GatewayHttp, retryDelayMs } from './gateway-http';
import type { Publisher } from './source';

export interface GatewayProducerOptions {
  gatewayUrl: string;
  token?: string;
  /** Largest request body (default 4 MiB, under the gateway's default --max-body-size of 5 MiB). */
  maxBatchBytes?: number;
  /** Resends of one request after a connection failure or a 502-504 (default 5). 429 is always retried, as asked. */
  retries?: number;
  /** Deadline of one request (default 30 s). */
  requestTimeoutMs?: number;
  /** Keep-alive connections (default 4). */
  connections?: number;
  userAgent?: string;
  /** Told about each resend (for logging). */
  onRetry?(err: Error, attempt: number, waitMs: number): void;
}

const utf8Item = (text: string): string => `{"body":${JSON.stringify(text)}}`;

/** One batch item (batch-item.json): valid UTF-8 as text (smaller, readable), anything else as exact base64. */
export function encodeBatchItem(body: Buffer | string): string {
  if (typeof body === 'string') return utf8Item(body);
  return isUtf8(body) ? utf8Item(body.toString('utf8')) : `{"body_base64":"${body.toString('base64')}"}`;
}

/**
 * Splits `bodies` into request bodies (JSON arrays) of at most `maxBytes` each; an item larger
 * than that on its own goes alone (the gateway then judges it). Each part says how many it holds.
 */
export function batchBodies(bodies: ReadonlyArray<Buffer | string>, maxBytes: number): Array<{ json: string; count: number }> {
  const parts: Array<{ json: string; count: number }> = [];
  let json = '';
  let bytes = 0;
  let count = 0;
  for (const b of bodies) {
    const item = encodeBatchItem(b);
    const size = Buffer.byteLength(item) + 1; // the comma or bracket with it
    if (count > 0 && bytes + size + 1 > maxBytes) {
      parts.push({ json: json + ']', count });
      json = '';
      bytes = count = 0;
    }
    json += (count === 0 ? '[' : ',') + item;
    bytes += size;
    count++;
  }
  if (count > 0) parts.push({ json: json + ']', count });
  return parts;
}

export class GatewayProducer implements Publisher {
  private readonly http: GatewayHttp;
  private readonly inFlight = new Set<Promise<void>>();
  private closing = false;

  constructor(private readonly o: GatewayProducerOptions) {
    this.http = new GatewayHttp({ url: o.gatewayUrl, token: o.token, userAgent: o.userAgent, connections: o.connections ?? 4 });
  }

  get address(): string {
    return this.http.base;
  }

  publish(topic: string, body: Buffer | string): Promise<void> {
    return this.publishMany(topic, [body]);
  }

  publishMany(topic: string, bodies: ReadonlyArray<Buffer | string>): Promise<void> {
    if (this.closing) return Promise.reject(new ClientError('CLOSED', 'producer is closed'));
    const p = this.sendAll(`/v1/topics/${encodeURIComponent(topic)}/batch`, bodies);
    this.inFlight.add(p);
    const forget = (): void => void this.inFlight.delete(p);
    p.then(forget, forget);
    return p;
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([...this.inFlight]);
    await this.http.close();
  }

  private async sendAll(path: string, bodies: ReadonlyArray<Buffer | string>): Promise<void> {
    if (bodies.length === 0) return;
    for (const part of batchBodies(bodies, this.o.maxBatchBytes ?? 4 * 1024 * 1024)) await this.send(path, part.json);
  }

  private async send(path: string, json: string): Promise<void> {
    let failures = 0; // the ones --retries bounds; 429s are not counted
    for (let attempt = 1; ; attempt++) {
      try {
        await this.http.call('POST', path, { body: json, contentType: 'application/json', timeoutMs: this.o.requestTimeoutMs ?? 30_000 });
        return;
      } catch (err) {
        const limited = err instanceof GatewayCallError && err.status === 429;
        if (!limited) failures++;
        const wait = failures <= (this.o.retries ?? 5) ? retryDelayMs(attempt, err, 100, 10_000) : null;
        if (wait === null || this.closing) throw err instanceof Error ? err : new ClientError('PROTOCOL', errorText(err));
        this.o.onRetry?.(err as Error, attempt, wait);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }
}
