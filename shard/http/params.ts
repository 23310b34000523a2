// Query parameters every shard endpoint reads, checked the same way everywhere with nsqd's codes.

import { isValidName } from '../../wire/names';
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
