// Topic and channel name rules, as nsqd enforces them.

const NAME = /^[.a-zA-Z0-9_-]+(#ephemeral)?$/;
const MAX_NAME_LENGTH = 64;

export function isValidName(name: string): boolean {
  return name.length >= 1 && name.length <= MAX_NAME_LENGTH && NAME.test(name);
}

export const isValidTopicName = isValidName;
export const isValidChannelName = isValidName;

export function isEphemeral(name: string): boolean {
  return name.endsWith('#ephemeral');
}
