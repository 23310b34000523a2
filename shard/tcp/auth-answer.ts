// An auth server's answer as nsqd reads it (nsqd internal/auth): validated, its topic and channel
// patterns compiled once (anchored; see the pattern notes in auth.ts), and the decisions it makes
// for SUB and PUB/MPUB/DPUB memoised. Pure: no I/O, time passed in.

export type Permission = 'subscribe' | 'publish';

/** Authorization decisions remembered per auth answer, at most (then the memo starts over). */
const MEMO_LIMIT = 1024;

export interface Authorization {
  readonly topic: string;
  readonly channels: readonly string[];
  readonly permissions: readonly Permission[];
}

interface CompiledAuthorization {
  readonly topic: RegExp;
  readonly channels: readonly RegExp[];
  readonly subscribe: boolean;
  readonly publish: boolean;
}

/** A validated auth answer with its patterns compiled once, and what it has decided so far. */
export class AuthState {
  private readonly compiled: readonly CompiledAuthorization[];
  // Decisions memoised by topic (and channel), so a PUB to a known topic costs two map lookups.
  private readonly publishMemo = new Map<string, boolean>();
  private readonly subscribeMemo = new Map<string, Map<string, boolean>>();
  private memoSize = 0;

  constructor(
    readonly ttlSeconds: number,
    readonly identity: string,
    readonly identityUrl: string,
    readonly authorizations: readonly Authorization[],
    /** On the client's clock (AuthOptions.now): expired once now > expiresAt, as nsqd's Expires.Before(now). */
    readonly expiresAt: number,
  ) {
    this.compiled = authorizations.map((a) => ({
      topic: compileOrThrow('topic', a.topic),
      channels: a.channels.map((c) => compileOrThrow('channel', c)),
      subscribe: a.permissions.includes('subscribe'),
      publish: a.permissions.includes('publish'),
    }));
  }

  isExpired(now: number): boolean {
    return this.expiresAt < now;
  }

  /**
   * The decision for one command: `permission` is what it needs (SUB → subscribe, PUB/MPUB/DPUB
   * → publish); `channel` is null for publishing and is then matched as "", as nsqd does.
   */
  allows(topic: string, channel: string | null, permission: Permission): boolean {
    if (permission === 'publish') {
      let known = this.publishMemo.get(topic);
      if (known === undefined) {
        known = this.decide(topic, channel ?? '', permission);
        this.remember(this.publishMemo, topic, known);
      }
      return known;
    }
    if (channel === null) return false;
    let byChannel = this.subscribeMemo.get(topic);
    let known = byChannel?.get(channel);
    if (known === undefined) {
      known = this.decide(topic, channel, permission);
      if (byChannel === undefined) {
        byChannel = new Map();
        this.remember(this.subscribeMemo, topic, byChannel);
      }
      this.remember(byChannel, channel, known);
    }
    return known;
  }

  private decide(topic: string, channel: string, permission: Permission): boolean {
    for (const a of this.compiled) {
      if (!(permission === 'publish' ? a.publish : a.subscribe) || !a.topic.test(topic)) continue;
      for (const re of a.channels) if (re.test(channel)) return true;
    }
    return false;
  }

  private remember<V>(map: Map<string, V>, key: string, value: V): void {
    if (this.memoSize >= MEMO_LIMIT) {
      this.publishMemo.clear();
      this.subscribeMemo.clear();
      this.memoSize = 0;
    }
    map.set(key, value);
    this.memoSize++;
  }
}

/** A failed query: the auth server could not be reached, answered non-200, or answered nonsense. */
export class AuthQueryError extends Error {
  readonly code = 'E_AUTH_QUERY';
  constructor(message: string) {
    super(message);
    this.name = 'AuthQueryError';
  }
}


function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A JSON string field as Go's Unmarshal reads it into a string: absent or null is "". */
function stringField(obj: Record<string, unknown>, key: string, where: string): string {
  const v = obj[key];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new AuthQueryError(`${where}${key} is not a string`);
  return v;
}

function stringList(obj: Record<string, unknown>, key: string, where: string): string[] {
  const v = obj[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new AuthQueryError(`${where}${key} is not an array`);
  return v.map((item, i) => {
    if (item === null) return '';
    if (typeof item !== 'string') throw new AuthQueryError(`${where}${key}[${i}] is not a string`);
    return item;
  });
}

/**
 * Validates an auth server's answer as nsqd's QueryAuthd does (its texts where it has them) and
 * compiles the patterns once. `now` is the client's clock, in ms, when the answer arrived.
 */
export function parseAuthState(text: string, now: number): AuthState {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new AuthQueryError(`invalid JSON: ${(err as Error).message}`);
  }
  if (doc === null) doc = {};
  if (!isObject(doc)) throw new AuthQueryError('answer is not a JSON object');
  const ttl = doc.ttl ?? 0;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl)) throw new AuthQueryError('ttl is not an integer');
  const identity = stringField(doc, 'identity', '');
  const identityUrl = stringField(doc, 'identity_url', '');
  const list = doc.authorizations ?? [];
  if (!Array.isArray(list)) throw new AuthQueryError('authorizations is not an array');
  const authorizations: Authorization[] = [];
  list.forEach((raw: unknown, i: number) => {
    const where = `authorizations[${i}].`;
    const a = raw === null ? {} : raw;
    if (!isObject(a)) throw new AuthQueryError(`authorizations[${i}] is not an object`);
    const topic = stringField(a, 'topic', where);
    const channels = stringList(a, 'channels', where);
    const permissions = stringList(a, 'permissions', where).map((p): Permission => {
      if (p !== 'subscribe' && p !== 'publish') throw new AuthQueryError(`unknown permission ${p}`);
      return p;
    });
    authorizations.push({ topic, channels, permissions });
  });
  // nsqd checks the patterns before the ttl; compiling them (in the constructor) first keeps that order.
  const state = new AuthState(ttl, identity, identityUrl, authorizations, now + ttl * 1000);
  if (ttl <= 0) throw new AuthQueryError(`invalid TTL ${ttl} (must be >0)`);
  return state;
}

function compileOrThrow(what: string, pattern: string): RegExp {
  try {
    return compilePattern(pattern);
  } catch (err) {
    throw new AuthQueryError(`unable to compile ${what} ${JSON.stringify(pattern)} ${(err as Error).message}`);
  }
}

/**
 * A Go RE2 pattern from an auth answer as an anchored JavaScript RegExp: ^(?:pattern)$.
 * Throws for what it cannot translate faithfully (see the header of this file).
 */
export function compilePattern(pattern: string): RegExp {
  let flags = '';
  let src = pattern;
  const lead = /^\(\?([a-zA-Z]+)\)/.exec(src);
  if (lead) {
    for (const f of lead[1]) {
      if (f === 'i' || f === 's' || f === 'm') flags += flags.includes(f) ? '' : f;
      else throw new Error(`unsupported flag ${f}`);
    }
    src = src.slice(lead[0].length);
  }
  let out = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') {
      const e = src[i + 1];
      if (e === undefined) throw new Error('trailing backslash');
      i++;
      if (/[0-9QpPCk]/.test(e) || (e === 'x' && src[i + 1] === '{')) throw new Error(`unsupported escape \\${e}`);
      if (!inClass && e === 'A') out += '^';
      else if (!inClass && e === 'z') out += '$';
      else out += '\\' + e;
      continue;
    }
    if (inClass) {
      if (c === '[' && src[i + 1] === ':') throw new Error('POSIX character classes are not supported');
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      if (src[i + 1] === '^') out += src[++i];
      // In RE2 a ']' first in a class is a literal; in JavaScript "[]" is an empty class.
      if (src[i + 1] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (c === '(' && src[i + 1] === '?') {
      const rest = src.slice(i + 2);
      if (rest.startsWith('P<')) {
        out += '(?<';
        i += 3;
        continue;
      }
      if (/^(=|!|<=|<!)/.test(rest)) throw new Error('lookaround is not supported');
    }
    out += c;
  }
  return new RegExp(`^(?:${out})$`, flags);
}
