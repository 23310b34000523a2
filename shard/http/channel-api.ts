// Sluice's per-channel settings beyond nsqd: max attempts and the dead-letter topic.
// GET /sluice/channel/config?topic=&channel= reads them; POST with max_attempts (0 = unlimited)
// and optionally dead_letter_topic (default `<topic>.dead`) sets them and creates the channel.

import type { Engine } from '../engine/engine';
import { isValidName } from '../../wire/names';
import { channelArg, topicArg } from './params';
import { HttpError, Request, Router } from './router';

const MAX_ATTEMPTS = 65535; // attempts travel as 16 bits on the wire

function names(r: Request): { topic: string; channel: string } {
  return { topic: topicArg(r), channel: channelArg(r) };
}

function view(topic: string, s: { max_attempts: number; dead_letter_topic: string; dead_lettered_count: number }, channel: string) {
  return { topic, channel, max_attempts: s.max_attempts, dead_letter_topic: s.dead_letter_topic, dead_lettered_count: s.dead_lettered_count };
}

export function registerChannelApi(router: Router, engine: Engine): void {
  router.on('GET', '/sluice/channel/config', (r) => {
    const { topic, channel } = names(r);
    const ch = engine.findChannel(topic, channel);
    if (!ch) throw new HttpError(404, engine.findTopic(topic) ? 'CHANNEL_NOT_FOUND' : 'TOPIC_NOT_FOUND');
    return view(topic, ch.stats(), channel);
  });

  router.on('POST', '/sluice/channel/config', (r) => {
    const { topic, channel } = names(r);
    const raw = r.query.get('max_attempts');
    if (raw === null || !/^\d+$/.test(raw) || Number(raw) > MAX_ATTEMPTS) throw new HttpError(400, 'INVALID_MAX_ATTEMPTS', { detail: `an integer 0..${MAX_ATTEMPTS}` });
    const dead = r.query.get('dead_letter_topic') ?? '';
    const effective = dead || `${topic}.dead`;
    if (Number(raw) > 0 && !isValidName(effective))
      throw new HttpError(400, 'INVALID_DEAD_LETTER_TOPIC', { detail: `"${effective}" is not a valid topic name; name one with dead_letter_topic` });
    if (effective === topic) throw new HttpError(400, 'INVALID_DEAD_LETTER_TOPIC', { detail: 'a channel cannot dead-letter into its own topic' });
    const ch = engine.channel(topic, channel);
    ch.configure(Number(raw), dead);
    return view(topic, ch.stats(), channel);
  });
}
