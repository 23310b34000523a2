// Sluice's publish extension (under /sluice/, beside the lease API): nsqd's /pub answers only
// "OK", but the gateway must hand its caller the message id, and idempotency keys need a window
// kept where the message lands. /sluice/pub publishes one message, /sluice/mpub a batch frame
// (wire/sluice-batch.ts) where each message has its own defer and idempotency key.

import type { Engine } from '../engine/engine';
import { systemClock, type Clock } from '../engine/clock';
import { IdempotencyWindow } from '../engine/idempotency';
import { BatchFrameError, BatchMessage, decodeBatch, MAX_IDEMPOTENCY_KEY_LENGTH } from '../../wire/sluice-batch';
import { topicArg, publishing } from './params';
import { HttpError, JsonText, readBody, Request, Router } from './router';

export const PUBLISH_PREFIX = '/sluice';

export interface PublishApiConfig {
  maxMsgSize: number;
  maxBodySize: number;
  maxReqTimeout: number;
  idempotencyWindow: number;
  idempotencyKeys: number;
}

const KEY = /^[\x20-\x7e]+$/;

function checkKey(key: string): void {
  if (key.length === 0 || Buffer.byteLength(key) > MAX_IDEMPOTENCY_KEY_LENGTH || !KEY.test(key)) throw new HttpError(400, 'INVALID_IDEMPOTENCY_KEY');
}

/**
 * Publishes a batch all or nothing (everything is checked before anything is stored). A key seen
 * within the window, or earlier in the same batch, is not published again: its first id is
 * answered and its index listed in `duplicates`.
 */
export function publishBatch(engine: Engine, window: IdempotencyWindow, topic: string, msgs: readonly BatchMessage[]): { ids: string[]; duplicates: number[] } {
  const ids: string[] = new Array(msgs.length);
  const duplicates: number[] = [];
  const firstOf = new Map<string, number>();
  const now: number[] = [];
  const nowBodies: Buffer[] = [];
  for (let i = 0; i < msgs.length; i++) {
    const key = msgs[i].idempotencyKey;
    if (key !== undefined) {
      const seen = window.get(topic, key);
      if (seen !== undefined) {
        ids[i] = seen;
        duplicates.push(i);
        continue;
      }
      const earlier = firstOf.get(key);
      if (earlier !== undefined) {
        duplicates.push(i);
        continue;
      }
      firstOf.set(key, i);
    }
    if (msgs[i].deferMs === 0) {
      now.push(i);
      nowBodies.push(msgs[i].body);
    } else ids[i] = publishing(() => engine.publish(topic, msgs[i].body, msgs[i].deferMs)).id;
  }
  if (now.length > 0) {
    const stored = publishing(() => engine.publishMany(topic, nowBodies));
    for (let j = 0; j < now.length; j++) ids[now[j]] = stored[j].id;
  }
  for (const [key, i] of firstOf) window.remember(topic, key, ids[i]);
  for (const i of duplicates) if (ids[i] === undefined) ids[i] = ids[firstOf.get(msgs[i].idempotencyKey as string) as number];
  return { ids, duplicates };
}

const PLAIN_ID = /^[\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * The /sluice/mpub answer, {"ids":[…],"duplicates":[…]}, rendered by hand. Freshly minted ids are
 * hex; only a duplicate's id comes from the idempotency window (possibly restored from disk), so
 * only those are checked before being embedded unescaped.
 */
export function batchAnswer(out: { ids: string[]; duplicates: number[] }): JsonText | { ids: string[]; duplicates: number[] } {
  for (const i of out.duplicates) if (!PLAIN_ID.test(out.ids[i])) return out;
  return new JsonText(out.ids.length === 0 ? '{"ids":[],"duplicates":[' + out.duplicates.join(',') + ']}' : '{"ids":["' + out.ids.join('","') + '"],"duplicates":[' + out.duplicates.join(',') + ']}');
}

export function registerPublishApi(router: Router, engine: Engine, config: PublishApiConfig, clock: Clock = systemClock): IdempotencyWindow {
  const window = new IdempotencyWindow({ windowMs: config.idempotencyWindow, maxKeys: config.idempotencyKeys }, clock);

  router.on('POST', `${PUBLISH_PREFIX}/pub`, async (r) => {
    const body = await readBody(r.req, config.maxMsgSize, 'MSG_TOO_BIG');
    if (body.length === 0) throw new HttpError(400, 'MSG_EMPTY');
    const topic = topicArg(r);
    let deferMs = 0;
    const ds = r.query.get('defer');
    if (ds !== null) {
      if (!/^\d+$/.test(ds)) throw new HttpError(400, 'INVALID_DEFER');
      deferMs = Number(ds);
      if (deferMs > config.maxReqTimeout) throw new HttpError(400, 'INVALID_DEFER');
    }
    const key = r.query.get('idempotency_key') ?? undefined;
    if (key !== undefined) checkKey(key);
    const out = publishBatch(engine, window, topic, [{ body, deferMs, idempotencyKey: key }]);
    return { id: out.ids[0], duplicate: out.duplicates.length > 0 };
  });

  // The frame carries per-message overhead, so the body may be up to twice --max-body-size.
  router.on('POST', `${PUBLISH_PREFIX}/mpub`, async (r) => {
    const topic = topicArg(r);
    const body = await readBody(r.req, config.maxBodySize * 2, 'BODY_TOO_BIG');
    let msgs: BatchMessage[];
    try {
      msgs = decodeBatch(body, config.maxMsgSize);
    } catch (err) {
      if (!(err instanceof BatchFrameError)) throw err;
      throw new HttpError(err.code === 'BAD_BODY' ? 400 : 413, err.code, err.index >= 0 ? { index: err.index } : undefined);
    }
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i];
      if (m.deferMs > config.maxReqTimeout) throw new HttpError(400, 'INVALID_DEFER', { index: i });
      if (m.idempotencyKey !== undefined && !KEY.test(m.idempotencyKey)) throw new HttpError(400, 'INVALID_IDEMPOTENCY_KEY', { index: i });
    }
    return batchAnswer(publishBatch(engine, window, topic, msgs));
  });

  return window;
}
