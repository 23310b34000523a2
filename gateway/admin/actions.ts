// What the admin can change: create, pause, unpause, empty and delete topics and channels on every
// shard holding them, and tombstone one shard for a topic at every lookup. Each action writes one
// audit record (who by key name — never the key — what, target, result per shard).

import type { Logger } from '../../runtime/logger';
import { placement } from '../routing';
import type { Topology } from '../topology';
import type { Aggregator } from './aggregator';
import { AdminHttp, errorCode } from './shard-http';

export const TOPIC_ACTIONS = ['create', 'pause', 'unpause', 'empty', 'delete'] as const;
export const CHANNEL_ACTIONS = TOPIC_ACTIONS;
export type Action = (typeof TOPIC_ACTIONS)[number];

export interface ActionContext {
  topology: Topology;
  http: AdminHttp;
  aggregator: Aggregator;
  audit: Logger;
  /** How many shards a new topic is placed on (the publisher's --new-topic-shards). */
  placementCount: number;
}

export interface Actor {
  /** The API key's name, or "anonymous" on an open gateway. */
  who: string;
  remote: string;
}

export interface StepResult {
  /** A shard or lookup address. */
  target: string;
  ok: boolean;
  error?: string;
}

export interface ActionResult {
  action: string;
  topic: string;
  channel?: string;
  shard?: string;
  /** 'ok' (every step), 'partial' (some) or 'failed' (none), or 'not_found' (nothing to act on). */
  result: 'ok' | 'partial' | 'failed' | 'not_found';
  steps: StepResult[];
}

function summarize(steps: StepResult[]): ActionResult['result'] {
  if (steps.length === 0) return 'not_found';
  const ok = steps.filter((s) => s.ok).length;
  return ok === steps.length ? 'ok' : ok === 0 ? 'failed' : 'partial';
}

/** The shards a fresh /stats shows holding the topic (and channel), plus those the lookups say hold it but could not be asked. */
async function holders(ctx: ActionContext, topic: string, channel?: string): Promise<string[]> {
  const s = await ctx.aggregator.collect({ topic, channel });
  const t = s.topics.find((x) => x.name === topic);
  const out = new Set<string>();
  if (t) for (const r of channel === undefined ? t.shards.map((x) => x.shard) : t.channels.find((c) => c.name === channel)?.shards.map((x) => x.shard) ?? []) out.add(r);
  const unreachable = new Set(s.shards.filter((x) => !x.ok).map((x) => x.address));
  for (const a of ctx.topology.shardsOf(topic)) if (unreachable.has(a)) out.add(a);
  return [...out].sort();
}

async function onShards(ctx: ActionContext, shards: readonly string[], path: string): Promise<StepResult[]> {
  return Promise.all(
    shards.map(async (target) => {
      try {
        await ctx.http.shard(target, 'POST', path);
        return { target, ok: true };
      } catch (err) {
        return { target, ok: false, error: errorCode(err) };
      }
    }),
  );
}

function record(ctx: ActionContext, actor: Actor, r: ActionResult): ActionResult {
  // Logged at warn so the audit trail survives the usual production level (--log-level warn).
  ctx.audit.warn('admin action', {
    audit: true,
    who: actor.who,
    remote: actor.remote,
    action: r.action,
    target: { topic: r.topic, ...(r.channel !== undefined ? { channel: r.channel } : {}), ...(r.shard !== undefined ? { shard: r.shard } : {}) },
    result: r.result,
    steps: r.steps,
  });
  // Let the lookups' view catch up (a created or deleted topic) without waiting for the next poll.
  if (r.steps.some((s) => s.ok)) void ctx.topology.refresh();
  return r;
}

export async function topicAction(ctx: ActionContext, actor: Actor, topic: string, action: Action): Promise<ActionResult> {
  let shards = await holders(ctx, topic);
  // A new topic goes where publishing would put it; an existing one is created again where it is (a no-op).
  if (action === 'create' && shards.length === 0) shards = placement(topic, ctx.topology.nodes(), ctx.placementCount);
  const steps = await onShards(ctx, shards, `/topic/${action}?topic=${encodeURIComponent(topic)}`);
  return record(ctx, actor, { action: `topic.${action}`, topic, result: summarize(steps), steps });
}

export async function channelAction(ctx: ActionContext, actor: Actor, topic: string, channel: string, action: Action): Promise<ActionResult> {
  // A channel is created on every shard of its topic, so it gets all of the topic's messages.
  const shards = await holders(ctx, topic, action === 'create' ? undefined : channel);
  const steps = await onShards(ctx, shards, `/channel/${action}?topic=${encodeURIComponent(topic)}&channel=${encodeURIComponent(channel)}`);
  return record(ctx, actor, { action: `channel.${action}`, topic, channel, result: summarize(steps), steps });
}

/** Tells every lookup to leave `shard` out of the topic's producers for a while (nsqadmin's tombstone). */
export async function tombstone(ctx: ActionContext, actor: Actor, topic: string, shard: string): Promise<ActionResult> {
  const lookups = Object.keys(ctx.topology.lookups());
  const path = `/topic/tombstone?topic=${encodeURIComponent(topic)}&node=${encodeURIComponent(shard)}`;
  const steps = await Promise.all(
    lookups.map(async (target): Promise<StepResult> => {
      try {
        await ctx.http.lookup(target, 'POST', path);
        return { target, ok: true };
      } catch (err) {
        return { target, ok: false, error: errorCode(err) };
      }
    }),
  );
  return record(ctx, actor, { action: 'topic.tombstone', topic, shard, result: summarize(steps), steps });
}
