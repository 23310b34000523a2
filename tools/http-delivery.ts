// One HTTP delivery for to-http: GET or POST a message to an endpoint with a deadline, following
// redirects, and refusing to connect to any address the policy forbids (by default every address
// that is not public): IP literals are checked before the request, host names when they are
// resolved (every address, at connect time, so DNS rebinding gains nothing), redirects too.

import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { classifyAddress, parseIPv4, parseIPv6 } from './target-policy';

export type DeliveryErrorCode = 'HTTP_STATUS' | 'TIMEOUT' | 'FORBIDDEN_TARGET' | 'NETWORK' | 'BAD_URL' | 'BAD_REDIRECT' | 'TOO_MANY_REDIRECTS';

export class DeliveryError extends Error {
  override name = 'DeliveryError';
  constructor(readonly code: DeliveryErrorCode, message: string, readonly status = 0) {
    super(message);
  }
}

export interface Endpoint {
  method: 'GET' | 'POST';
  /** For GET, every "%s" is replaced by the URL-encoded body (as nsq_to_http does). */
  url: string;
}

/** Which resolved addresses may be connected to. */
export type AddressPolicy = (ip: string) => boolean;

export const publicOnly: AddressPolicy = (ip) => classifyAddress(ip) === 'public';
export const anyAddress: AddressPolicy = () => true;

export interface DeliveryOptions {
  timeoutMs: number;
  contentType: string;
  headers: Record<string, string>;
  allowed: AddressPolicy;
  maxRedirects: number;
  agents: { http: http.Agent; https: https.Agent };
}

/** The host of a URL without IPv6 brackets. */
function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

const isIpLiteral = (host: string): boolean => parseIPv4(host) !== null || parseIPv6(host) !== null;

function refuse(host: string, address: string): DeliveryError {
  return new DeliveryError('FORBIDDEN_TARGET', `${host} is ${address === host ? '' : `resolved to ${address}, `}a ${classifyAddress(address)} address (use --allow-private-targets to allow it)`);
}

/** A parsed http(s) URL, or an error naming what is wrong with it. */
export function parseEndpointUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new DeliveryError('BAD_URL', `"${text}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DeliveryError('BAD_URL', `"${text}" is not http or https`);
  return url;
}

/** Before starting: is this endpoint allowed? Resolves the host and checks every address. */
export async function checkTarget(url: URL, allowed: AddressPolicy): Promise<void> {
  const host = hostOf(url);
  if (isIpLiteral(host)) {
    if (!allowed(host)) throw refuse(host, host);
    return;
  }
  const addresses = await dns.promises.lookup(host, { all: true, verbatim: true });
  for (const a of addresses) if (!allowed(a.address)) throw refuse(host, a.address);
}

/** A dns.lookup for sockets that fails when any address of the name is refused by the policy. */
export function guardedLookup(allowed: AddressPolicy): LookupFunction {
  const lookup = (hostname: string, options: dns.LookupOptions, callback: (err: Error | null, address: string | dns.LookupAddress[], family?: number) => void): void => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      const bad = addresses.find((a) => !allowed(a.address));
      if (bad) return callback(refuse(hostname, bad.address), '');
      if (addresses.length === 0) return callback(new DeliveryError('NETWORK', `${hostname} has no address`), '');
      if (options.all) callback(null, addresses);
      else callback(null, addresses[0].address, addresses[0].family);
    });
  };
  return lookup as unknown as LookupFunction;
}

function expand(endpoint: Endpoint, body: Buffer): string {
  return endpoint.method === 'GET' && endpoint.url.includes('%s') ? endpoint.url.split('%s').join(encodeURIComponent(body.toString('utf8'))) : endpoint.url;
}

/** Delivers `body`; resolves with the final 2xx status, or rejects with a DeliveryError. */
export async function deliver(endpoint: Endpoint, body: Buffer, o: DeliveryOptions, lookup: LookupFunction): Promise<number> {
  let url = parseEndpointUrl(expand(endpoint, body));
  let method: 'GET' | 'POST' = endpoint.method;
  const deadline = Date.now() + o.timeoutMs;
  for (let hop = 0; ; hop++) {
    const host = hostOf(url);
    if (isIpLiteral(host) && !o.allowed(host)) throw refuse(host, host);
    const { status, location } = await requestOnce(url, method, method === 'POST' ? body : null, o, lookup, deadline - Date.now());
    if (status >= 200 && status < 300) return status;
    if (location === null || ![301, 302, 303, 307, 308].includes(status)) throw new DeliveryError('HTTP_STATUS', `${method} ${url.origin}${url.pathname}: HTTP ${status}`, status);
    if (hop >= o.maxRedirects) throw new DeliveryError('TOO_MANY_REDIRECTS', `more than ${o.maxRedirects} redirects from ${endpoint.url}`, status);
    try {
      url = parseEndpointUrl(new URL(location, url).toString());
    } catch {
      throw new DeliveryError('BAD_REDIRECT', `redirect to "${location}" refused`, status);
    }
    // as browsers and Go's client: 303 always, 301/302 after a POST, become a GET without a body
    if (status === 303 || ((status === 301 || status === 302) && method === 'POST')) method = 'GET';
  }
}

function requestOnce(
  url: URL,
  method: 'GET' | 'POST',
  body: Buffer | null,
  o: DeliveryOptions,
  lookup: LookupFunction,
  timeoutMs: number,
): Promise<{ status: number; location: string | null }> {
  return new Promise((resolve, reject) => {
    if (timeoutMs <= 0) return reject(new DeliveryError('TIMEOUT', `no answer within ${o.timeoutMs} ms`));
    const secure = url.protocol === 'https:';
    const headers: Record<string, string | number> = { ...o.headers };
    if (body !== null) {
      headers['content-type'] = o.contentType;
      headers['content-length'] = body.length;
    }
    const req = (secure ? https : http).request(url, { method, headers, agent: secure ? o.agents.https : o.agents.http, lookup });
    const timer = setTimeout(() => req.destroy(new DeliveryError('TIMEOUT', `no answer within ${o.timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof DeliveryError ? err : new DeliveryError('NETWORK', `${method} ${url.origin}: ${err.message}`));
    });
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const location = typeof res.headers.location === 'string' ? res.headers.location : null;
      res.resume(); // the body is not needed, but must be read for the connection to be reused
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status, location });
      });
      const failed = (err: Error): void => {
        clearTimeout(timer);
        reject(err instanceof DeliveryError ? err : new DeliveryError('NETWORK', `${method} ${url.origin}: ${err.message}`));
      };
      res.on('error', failed);
      res.on('close', () => {
        if (!res.complete) failed(new Error('connection closed during the answer'));
      });
    });
    req.end(body ?? undefined);
  });
}
