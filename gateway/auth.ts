// API keys and scopes. Keys live in a JSON file (--auth-file) as SHA-256 hashes; a presented key
// is hashed and compared with every stored hash in constant time. Scopes are anchored patterns:
// `publish:orders.*`, `consume:orders/billing-*`, `stats` (read-only operations views: /metrics,
// /v1/shards, the admin API's GETs) and `admin` (which may do everything).

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ValidateFunction } from 'ajv';
import { GatewayError } from './errors';

export type Scope = { kind: 'admin' } | { kind: 'stats' } | { kind: 'publish'; topic: RegExp } | { kind: 'consume'; topic: RegExp; channel: RegExp };

export interface Principal {
  name: string;
  scopes: Scope[];
}

interface StoredKey extends Principal {
  sha256: Buffer;
  /** Epoch ms after which the key is refused; Infinity = never. */
  expiresAt: number;
}

/** `*` matches any run of name characters; everything else is literal; the whole name must match. */
export function namePattern(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[.a-zA-Z0-9_#-]*');
  return new RegExp('^' + body + '$');
}

export function parseScope(text: string): Scope {
  if (text === 'admin') return { kind: 'admin' };
  if (text === 'stats') return { kind: 'stats' };
  if (text.startsWith('publish:')) return { kind: 'publish', topic: namePattern(text.slice(8)) };
  if (text.startsWith('consume:')) {
    const [topic, channel] = text.slice(8).split('/');
    if (topic && channel) return { kind: 'consume', topic: namePattern(topic), channel: namePattern(channel) };
  }
  throw new Error(`invalid scope "${text}"`);
}

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class Auth {
  private constructor(private readonly keys: StoredKey[], private readonly wallNow: () => number) {}

  static fromDocument(doc: unknown, validate: ValidateFunction, wallNow: () => number = Date.now): Auth {
    if (!validate(doc)) throw new Error(`auth file: ${JSON.stringify(validate.errors?.[0] ?? {})}`);
    const keys = (doc as { keys: { name: string; sha256: string; scopes: string[]; expires_at?: string }[] }).keys;
    return new Auth(
      keys.map((k) => {
        const expiresAt = k.expires_at === undefined ? Infinity : Date.parse(k.expires_at);
        if (Number.isNaN(expiresAt)) throw new Error(`auth file: key ${k.name}: expires_at is not a time`);
        return { name: k.name, sha256: Buffer.from(k.sha256, 'hex'), scopes: k.scopes.map(parseScope), expiresAt };
      }),
      wallNow,
    );
  }

  static fromFile(file: string, validate: ValidateFunction, wallNow: () => number = Date.now): Auth {
    return Auth.fromDocument(JSON.parse(readFileSync(file, 'utf8')) as unknown, validate, wallNow);
  }

  /** The key's owner, or null. Every stored hash is compared, whether or not one already matched. */
  identify(key: string): Principal | null {
    const h = sha256(key);
    let found: StoredKey | null = null;
    for (const k of this.keys) if (timingSafeEqual(h, k.sha256) && !found) found = k;
    return found;
  }

  /** From `Authorization: Bearer <key>` (or, where allowed, a `token` query parameter). */
  authenticate(authorization: string | undefined, queryToken?: string | null): Principal {
    let key: string | undefined;
    if (authorization !== undefined) {
      const m = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
      if (m) key = m[1];
    } else if (queryToken) key = queryToken;
    const p = key === undefined ? null : this.identify(key);
    if (!p) throw new GatewayError('UNAUTHENTICATED');
    if ((p as StoredKey).expiresAt <= this.wallNow()) throw new GatewayError('UNAUTHENTICATED', { reason: 'expired' });
    return p;
  }
}

export function canPublish(p: Principal, topic: string): boolean {
  return p.scopes.some((s) => s.kind === 'admin' || (s.kind === 'publish' && s.topic.test(topic)));
}

export function canConsume(p: Principal, topic: string, channel: string): boolean {
  return p.scopes.some((s) => s.kind === 'admin' || (s.kind === 'consume' && s.topic.test(topic) && s.channel.test(channel)));
}

/** Reading the operations views (metrics, shards, the admin API's GETs): `stats` or `admin`. */
export function canReadStats(p: Principal): boolean {
  return p.scopes.some((s) => s.kind === 'admin' || s.kind === 'stats');
}

export function isAdmin(p: Principal): boolean {
  return p.scopes.some((s) => s.kind === 'admin');
}
