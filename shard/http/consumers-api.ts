// POST /sluice/consumers (Sluice's extension): a gateway reports its HTTP consumers of this
// shard's channels (wire/consumer-report.ts). 200 {"status":"OK"} when applied; 400 INVALID_BODY
// / INVALID_REPORT naming the field; 409 REPORT_UNKNOWN when a delta's base is not what this shard
// holds (it restarted, the entries expired, or a channel was deleted): the gateway then resends
// in full. What it holds shows in /stats as each channel's http_consumers.

import { CONSUMER_REPORT_PATH, isProblem, parseConsumerReport, REPORT_LIMITS } from '../../wire/consumer-report';
import type { HttpConsumerRegistry } from './http-consumers';
import { HttpError, readBody, Router } from './router';

export function registerConsumersApi(router: Router, registry: HttpConsumerRegistry): void {
  router.on('POST', CONSUMER_REPORT_PATH, async (r) => {
    const body = await readBody(r.req, REPORT_LIMITS.maxBody, 'BODY_TOO_BIG');
    let doc: unknown;
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch {
      throw new HttpError(400, 'INVALID_BODY', { detail: 'body is not JSON' });
    }
    const report = parseConsumerReport(doc);
    if (isProblem(report)) throw new HttpError(400, 'INVALID_REPORT', { field: report.field, detail: report.detail });
    const result = registry.apply(report);
    if (result === 'REPORT_UNKNOWN') throw new HttpError(409, 'REPORT_UNKNOWN', { detail: 'this shard does not hold that base version: send a full report' });
    if (result === 'TOO_MANY_GATEWAYS' || result === 'TOO_MANY_ENTRIES') throw new HttpError(503, result);
    return { status: 'OK', version: report.version };
  });
}
