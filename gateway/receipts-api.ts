// Ack, requeue and touch by receipt (POST /v1/receipts/{ack,requeue,touch}): one receipt in the
// query string (a failure is the HTTP status) or many in a JSON body (one result each, in order),
// through any gateway of the cluster. Each receipt is verified, checked against the caller's
// consume scope for its channel, and settled on its shard (coalesced, see settle.ts).

import type { ApiDeps, Call } from './api';
import { canConsume } from './auth';
import { mediaType, readBody } from './body';
import type { ResultCode, SettleRequest, SettleResult } from './consume';
import { admit, ConsumeApi, consumer, intParam, param, service } from './consume-common';
import { ErrorCode, GatewayError, sendJson } from './errors';
import { describeErrors } from './schemas';

// ---- POST /v1/receipts/{ack,requeue,touch} ----

const RESULT_STATUS: Record<Exclude<ResultCode, 'OK'>, ErrorCode> = {
  RECEIPT_INVALID: 'RECEIPT_INVALID',
  RECEIPT_STALE: 'RECEIPT_STALE',
  NOT_IN_FLIGHT: 'NOT_IN_FLIGHT',
  FORBIDDEN: 'FORBIDDEN',
  SHARD_UNKNOWN: 'SHARD_UNKNOWN',
  SHARD_UNAVAILABLE: 'SHARD_UNAVAILABLE',
};

export type Op = 'finish' | 'requeue' | 'touch';

async function settleRequests(d: ApiDeps, k: ConsumeApi, c: Call, op: Op): Promise<{ reqs: SettleRequest[]; single: boolean }> {
  const svc = k.consume;
  const one = param(c, 'receipt');
  if (one !== null) {
    c.req.resume();
    const r: SettleRequest = { receipt: one };
    if (op === 'requeue') r.delayMs = intParam(c, 'delay_ms', 0, 0, d.limits.maxDeferMs);
    if (op === 'touch' && param(c, 'lease_ms') !== null) r.leaseMs = intParam(c, 'lease_ms', 0, 1, svc.opts.maxLeaseMs);
    return { reqs: [r], single: true };
  }
  if (mediaType(c.req) !== 'application/json') throw new GatewayError('UNSUPPORTED_MEDIA_TYPE', { accepted: ['application/json'], hint: 'or one receipt as ?receipt=' });
  const body = await readBody(c.req, d.limits.maxBodySize, 'BODY_TOO_BIG');
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new GatewayError('INVALID_JSON', { reason: err instanceof Error ? err.message : String(err) });
  }
  // The common shape ({"receipts":[strings]}) is checked by hand; anything else goes through ajv.
  if (!plainReceipts(doc) && !k.receiptsRequest(doc)) throw new GatewayError('VALIDATION_FAILED', { errors: describeErrors(k.receiptsRequest.errors) });
  const b = doc as { receipts: (string | { receipt: string; delay_ms?: number; lease_ms?: number })[]; delay_ms?: number; lease_ms?: number };
  if (b.delay_ms !== undefined && b.delay_ms > d.limits.maxDeferMs) throw new GatewayError('INVALID_PARAMETER', { parameter: 'delay_ms', max: d.limits.maxDeferMs });
  const reqs = b.receipts.map((it): SettleRequest => {
    const r: SettleRequest = typeof it === 'string' ? { receipt: it } : { receipt: it.receipt, delayMs: it.delay_ms, leaseMs: it.lease_ms };
    if (op === 'requeue') r.delayMs = Math.min(r.delayMs ?? b.delay_ms ?? 0, d.limits.maxDeferMs);
    if (op === 'touch') r.leaseMs = r.leaseMs ?? b.lease_ms;
    if (r.leaseMs !== undefined) r.leaseMs = Math.min(r.leaseMs, svc.opts.maxLeaseMs);
    return r;
  });
  return { reqs, single: false };
}

/** `{"receipts":["…", …]}` and nothing else, within the schema's limits. */
function plainReceipts(doc: unknown): boolean {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return false;
  const keys = Object.keys(doc);
  const list = (doc as { receipts?: unknown }).receipts;
  if (keys.length !== 1 || !Array.isArray(list) || list.length === 0 || list.length > 5000) return false;
  for (const r of list) if (typeof r !== 'string' || r.length === 0 || r.length > 1800) return false;
  return true;
}

export function settleHandler(op: Op) {
  return async (d: ApiDeps, k: ConsumeApi, c: Call): Promise<void> => {
    const svc = service(k);
    const who = consumer(d, c);
    // One request is one unit of the rate, however many receipts its body carries.
    admit(d, c, 'receipts', who);
    const { reqs, single } = await settleRequests(d, k, c, op);
    const results: SettleResult[] = await svc.settle(op, reqs, (f) => !who || canConsume(who, f.topic, f.channel));
    if (single) {
      const r = results[0];
      if (r.status !== 'OK') throw new GatewayError(RESULT_STATUS[r.status]);
      sendJson(c.res, 200, r.leaseMs === undefined ? { status: 'OK' } : { status: 'OK', lease_ms: r.leaseMs });
      return;
    }
    let ok = 0;
    let out = '{"results":[';
    for (let i = 0; i < results.length; i++) {
      const r = results[i];
      if (r.status === 'OK') ok++;
      out += (i === 0 ? '' : ',') + '{"status":"' + r.status + '"' + (r.leaseMs === undefined ? '}' : ',"lease_ms":' + r.leaseMs + '}');
    }
    out += '],"ok":' + ok + ',"failed":' + (results.length - ok) + '}';
    c.res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(out) });
    c.res.end(out);
  };
}
