// nsqd v1.3's HTTP API on top of the engine: /ping, /info, /stats, /pub, /mpub, topic and
// channel administration and /config, with nsqd's paths, status codes and error strings.

import type { Engine } from '../engine/engine';
import { channelArg, topicArg, publishing } from './params';
import { HttpError, Json, readBody, Request, Router } from './router';
import { HttpConsumersOf, nsqdStats, ShardIdentity, statsText } from './stats';


export interface NsqdApiDeps {
  engine: Engine;
  maxMsgSize: number;
  maxBodySize: number;
  maxReqTimeoutMs: number;
  identity(): ShardIdentity;
  /** "OK", or a description of what is wrong (then /ping answers 500). */
  health(): string;
  /** Current value of an option by nsqd's config name (`mem_queue_size`), or undefined if unknown. */
  getOption(name: string): unknown;
  /** Changes an option at runtime (nsqd allows `nsqlookupd_tcp_addresses`); false if not allowed. */
  setOption(name: string, value: unknown): boolean;
  /** Describes the TCP clients that have published, for /stats `producers`. */
  producers(): Record<string, unknown>[];
  /** Sluice's extension to /stats: a channel's HTTP consumers as the gateways reported them. */
  httpConsumers?: HttpConsumersOf;
}

function existingTopic(d: NsqdApiDeps, r: Request) {
  const name = topicArg(r);
  const t = d.engine.findTopic(name);
  if (!t) throw new HttpError(404, 'TOPIC_NOT_FOUND');
  return t;
}

function existingChannel(d: NsqdApiDeps, r: Request) {
  const t = existingTopic(d, r);
  const ch = t.channels.get(channelArg(r));
  if (!ch) throw new HttpError(404, 'CHANNEL_NOT_FOUND');
  return ch;
}

/** Splits a newline-separated /mpub body; empty lines are skipped, as nsqd does. */
export function splitLines(body: Buffer, maxMsgSize: number): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  while (start <= body.length) {
    let nl = body.indexOf(10, start);
    if (nl === -1) nl = body.length;
    if (nl > start) {
      if (nl - start > maxMsgSize) throw new HttpError(413, 'MSG_TOO_BIG');
      out.push(body.subarray(start, nl));
    }
    start = nl + 1;
  }
  return out;
}

/** Parses a binary /mpub body: [4B count]([4B size][bytes])*; errors as nsqd reports them. */
export function splitBinary(body: Buffer, maxMsgSize: number): Buffer[] {
  if (body.length < 4) throw new HttpError(413, 'BAD_BODY');
  const count = body.readUInt32BE(0);
  if (count === 0) throw new HttpError(413, 'BAD_BODY');
  const out: Buffer[] = [];
  let off = 4;
  for (let i = 0; i < count; i++) {
    if (off + 4 > body.length) throw new HttpError(413, 'BAD_MESSAGE');
    const size = body.readUInt32BE(off);
    if (size === 0 || size > maxMsgSize) throw new HttpError(413, 'BAD_MESSAGE');
    off += 4;
    if (off + size > body.length) throw new HttpError(413, 'BAD_MESSAGE');
    out.push(body.subarray(off, off + size));
    off += size;
  }
  return out;
}

export function registerNsqdApi(router: Router, d: NsqdApiDeps): void {
  router.on('GET', '/ping', () => {
    const health = d.health();
    if (health !== 'OK') throw new HttpError(500, health);
    return 'OK';
  });

  router.on('GET', '/info', () => d.identity());

  router.on('GET', '/stats', (r) => {
    const topic = r.query.get('topic') ?? '';
    const channel = r.query.get('channel') ?? '';
    const opts = {
      topic,
      channel,
      includeClients: r.query.get('include_clients') !== 'false',
      includeMem: r.query.get('include_mem') !== 'false',
    };
    const stats = nsqdStats(d.engine, d.identity(), d.health(), opts, d.producers(), d.httpConsumers);
    return r.query.get('format') === 'json' ? stats : statsText(stats);
  });

  router.on('POST', '/pub', async (r) => {
    const body = await readBody(r.req, d.maxMsgSize, 'MSG_TOO_BIG');
    if (body.length === 0) throw new HttpError(400, 'MSG_EMPTY');
    const topic = topicArg(r);
    let deferMs = 0;
    const ds = r.query.get('defer');
    if (ds !== null) {
      if (!/^-?\d+$/.test(ds)) throw new HttpError(400, 'INVALID_DEFER');
      deferMs = Number(ds);
      if (deferMs < 0 || deferMs > d.maxReqTimeoutMs) throw new HttpError(400, 'INVALID_DEFER');
    }
    publishing(() => d.engine.publish(topic, body, deferMs));
    return 'OK';
  });

  router.on('POST', '/mpub', async (r) => {
    const declared = Number(r.req.headers['content-length'] ?? 0);
    if (declared > d.maxBodySize) throw new HttpError(413, 'BODY_TOO_BIG');
    const topic = topicArg(r);
    const body = await readBody(r.req, d.maxBodySize, 'BODY_TOO_BIG');
    const binary = r.query.has('binary') && r.query.get('binary') !== 'false';
    const msgs = binary ? splitBinary(body, d.maxMsgSize) : splitLines(body, d.maxMsgSize);
    if (msgs.length > 0) publishing(() => d.engine.publishMany(topic, msgs));
    return 'OK';
  });

  router.on('POST', '/topic/create', (r) => {
    d.engine.topic(topicArg(r));
    return null;
  });
  router.on('POST', '/topic/delete', (r) => {
    if (!d.engine.deleteTopic(topicArg(r))) throw new HttpError(404, 'TOPIC_NOT_FOUND');
    return null;
  });
  router.on('POST', '/topic/empty', (r) => {
    existingTopic(d, r).empty();
    return null;
  });
  router.on('POST', '/topic/pause', (r) => {
    existingTopic(d, r).pause();
    return null;
  });
  router.on('POST', '/topic/unpause', (r) => {
    existingTopic(d, r).unpause();
    return null;
  });

  router.on('POST', '/channel/create', (r) => {
    existingTopic(d, r).getChannel(channelArg(r));
    return null;
  });
  router.on('POST', '/channel/delete', (r) => {
    const t = existingTopic(d, r);
    if (!d.engine.deleteChannel(t.name, channelArg(r))) throw new HttpError(404, 'CHANNEL_NOT_FOUND');
    return null;
  });
  router.on('POST', '/channel/empty', (r) => {
    existingChannel(d, r).empty();
    return null;
  });
  router.on('POST', '/channel/pause', (r) => {
    existingChannel(d, r).pause();
    return null;
  });
  router.on('POST', '/channel/unpause', (r) => {
    existingChannel(d, r).unpause();
    return null;
  });

  const config = async (r: Request) => {
    const opt = r.params.opt;
    if (r.req.method === 'PUT') {
      const body = await readBody(r.req, d.maxMsgSize, 'INVALID_VALUE');
      if (body.length === 0) throw new HttpError(413, 'INVALID_VALUE');
      let value: unknown;
      try {
        value = JSON.parse(body.toString('utf8'));
      } catch {
        throw new HttpError(400, 'INVALID_VALUE');
      }
      if (d.getOption(opt) === undefined) throw new HttpError(400, 'INVALID_OPTION');
      if (!d.setOption(opt, value)) throw new HttpError(400, 'INVALID_VALUE');
    }
    const v = d.getOption(opt);
    if (v === undefined) throw new HttpError(400, 'INVALID_OPTION');
    return new Json(v);
  };
  router.on('GET', '/config/:opt', config);
  router.on('PUT', '/config/:opt', config);
}
