// Discovery through lookups (nsqlookupd-compatible HTTP): which nodes hold a topic (/lookup) or
// exist at all (/nodes). Several lookups are asked and their answers merged, as go-nsq does;
// one lookup failing is reported, not fatal, while another answers.

import { request } from 'undici';
import { ClientError, errorText } from './errors';

/** A node as lookups describe it (nsqlookupd's PeerInfo). */
export interface NodeAddress {
  broadcastAddress: string;
  tcpPort: number;
  httpPort: number;
  /** "host:port" of its TCP protocol V2 (IPv6 hosts in brackets). */
  tcpAddress: string;
  /** "host:port" of its HTTP API. */
  httpAddress: string;
}

export interface Discovery {
  nodes: NodeAddress[];
  /** One entry per lookup that could not be asked or answered nonsense. */
  errors: ClientError[];
}

const MAX_BODY = 8 * 1024 * 1024;

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** "host:port" or "http://host:port[/]" → the base URL, as go-nsq accepts both. */
export function lookupBaseUrl(address: string): string {
  const a = address.trim().replace(/\/+$/, '');
  return /^https?:\/\//i.test(a) ? a : `http://${a}`;
}

/** GET a JSON document; `null` for a 404 when `notFoundIsNull`. Throws ClientError('LOOKUP_FAILED'). */
export async function getJson(url: string, timeoutMs: number, notFoundIsNull = false): Promise<unknown> {
  let res;
  try {
    res = await request(url, { method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new ClientError('LOOKUP_FAILED', `GET ${url}: ${errorText(err)}`);
  }
  const size = Number(res.headers['content-length'] ?? 0);
  if (size > MAX_BODY) {
    res.body.destroy();
    throw new ClientError('LOOKUP_FAILED', `GET ${url}: answer of ${size} bytes is too large`);
  }
  let text: string;
  try {
    text = await res.body.text();
  } catch (err) {
    throw new ClientError('LOOKUP_FAILED', `GET ${url}: ${errorText(err)}`);
  }
  if (res.statusCode === 404 && notFoundIsNull) return null;
  if (res.statusCode !== 200) throw new ClientError('LOOKUP_FAILED', `GET ${url}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ClientError('LOOKUP_FAILED', `GET ${url}: answer is not JSON`);
  }
}

/** The producers of a /lookup or /nodes answer, checked field by field (nsqlookupd < 1.0 wrapped them in "data"). */
export function parseProducers(doc: unknown): NodeAddress[] {
  const rec = (v: unknown): Record<string, unknown> | null => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null);
  const top = rec(doc);
  const body = rec(top?.data) ?? top;
  if (!body || !Array.isArray(body.producers)) throw new ClientError('LOOKUP_FAILED', 'answer has no producers list');
  const out: NodeAddress[] = [];
  for (const p of body.producers) {
    const r = rec(p);
    const host = r?.broadcast_address;
    const tcp = r?.tcp_port;
    const http = r?.http_port;
    if (typeof host !== 'string' || host === '' || !isPort(tcp) || !isPort(http)) continue;
    out.push({ broadcastAddress: host, tcpPort: tcp, httpPort: http, tcpAddress: formatHostPort(host, tcp), httpAddress: formatHostPort(host, http) });
  }
  return out;
}

function isPort(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 65535;
}

async function ask(lookups: readonly string[], path: string, timeoutMs: number): Promise<Discovery> {
  const answers = await Promise.allSettled(
    lookups.map(async (l) => {
      const doc = await getJson(lookupBaseUrl(l) + path, timeoutMs, true);
      return doc === null ? [] : parseProducers(doc);
    }),
  );
  const byTcp = new Map<string, NodeAddress>();
  const errors: ClientError[] = [];
  answers.forEach((a, i) => {
    if (a.status === 'fulfilled') for (const n of a.value) byTcp.set(n.tcpAddress, n);
    else errors.push(a.reason instanceof ClientError ? a.reason : new ClientError('LOOKUP_FAILED', `${lookups[i]}: ${errorText(a.reason)}`));
  });
  return { nodes: [...byTcp.values()], errors };
}

/** The nodes that hold `topic`, merged from every lookup (a lookup that does not know it answers none). */
export function lookupTopic(lookups: readonly string[], topic: string, timeoutMs = 5000): Promise<Discovery> {
  return ask(lookups, `/lookup?topic=${encodeURIComponent(topic)}`, timeoutMs);
}

/** Every node the lookups know. */
export function lookupNodes(lookups: readonly string[], timeoutMs = 5000): Promise<Discovery> {
  return ask(lookups, '/nodes', timeoutMs);
}
