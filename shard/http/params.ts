// What every shard endpoint shares: topic/channel parameters checked with nsqd's codes, and the
// mapping of the engine's publish refusals to HTTP answers.

import { isValidName } from '../../wire/names';
import { EngineError } from '../engine/engine';
import { HttpError, Request } from './router';

export function topicArg(r: Request): string {
  const topic = r.query.get('topic');
  if (topic === null) throw new HttpError(400, 'MISSING_ARG_TOPIC');
  if (!isValidName(topic)) throw new HttpError(400, 'INVALID_TOPIC');
  return topic;
}

export function channelArg(r: Request): string {
  const channel = r.query.get('channel');
  if (channel === null) throw new HttpError(400, 'MISSING_ARG_CHANNEL');
  if (!isValidName(channel)) throw new HttpError(400, 'INVALID_CHANNEL');
  return channel;
}

/**
 * Runs a publish, turning the engine's refusals into nsqd's answers: a bad name is 400
 * INVALID_TOPIC; a storage failure (e.g. a full disk) is 503 PUB_FAILED and never acknowledged.
 */
export function publishing<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof EngineError && err.code === 'INVALID_TOPIC') throw new HttpError(400, 'INVALID_TOPIC');
    if (err instanceof EngineError && err.code === 'PUB_FAILED') throw new HttpError(503, 'PUB_FAILED');
    throw err;
  }
}
