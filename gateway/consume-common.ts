// What every consuming endpoint shares: the call and service types, query parameters, who the
// caller is — from Authorization, or (EventSource cannot send headers) ?token= or the
// sluice_token cookie — with the consume scope its channel needs, and the caller's per-key limits.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ValidateFunction } from 'ajv';
import type { ApiDeps, Call } from './api';
import { canConsume, Principal } from './auth';
import type { Consumption } from './consume';
import { GatewayError } from './errors';
import { limitKey, type LimitFamily } from './key-limits';
import { loadSchemaDir } from './schemas';

export interface ConsumeCall extends Call {
  /** The channel path segment, percent-decoded. */
  channel: string;
}

export interface ConsumeApi {
  consume: Consumption;
  receiptsRequest: ValidateFunction;
  channelSettingsRequest: ValidateFunction;
  exampleHtml: string;
}

/** Compiles the consuming API's request schemas (schemas/api/) and reads the example page. */
export function createConsumeApi(root: string, consume: Consumption): ConsumeApi {
  const ajv = loadSchemaDir(path.join(root, 'schemas', 'api'));
  const get = (id: string) => {
    const v = ajv.getSchema('https://sluice.invalid/schemas/api/' + id);
    if (!v) throw new Error(`schema ${id} missing`);
    return v;
  };
  return {
    consume,
    receiptsRequest: get('receipts-request.json'),
    channelSettingsRequest: get('channel-settings-request.json'),
    exampleHtml: readFileSync(path.join(root, 'gateway', 'example', 'index.html'), 'utf8'),
  };
}

export const TOKEN_COOKIE = 'sluice_token';

export function param(c: Call, name: string): string | null {
  if (c.rawQuery === '') return null;
  c.parsedQuery ??= new URLSearchParams(c.rawQuery);
  return c.parsedQuery.get(name);
}

export function intParam(c: Call, name: string, def: number, min: number, max: number): number {
  const v = param(c, name);
  if (v === null || v === '') return def;
  if (!/^\d{1,15}$/.test(v)) throw new GatewayError('INVALID_PARAMETER', { parameter: name, value: v, min, max });
  const n = Number(v);
  if (n < min || n > max) throw new GatewayError('INVALID_PARAMETER', { parameter: name, value: n, min, max });
  return n;
}

export function cookie(c: Call, name: string): string | undefined {
  const h = c.req.headers.cookie;
  if (!h) return undefined;
  for (const part of h.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** The caller, from Authorization, else ?token=, else the sluice_token cookie (null: the gateway is open). */
export function consumer(d: ApiDeps, c: Call): Principal | null {
  if (!d.auth) return null;
  return d.auth.authenticate(c.req.headers.authorization, param(c, 'token') ?? cookie(c, TOKEN_COOKIE) ?? null);
}

export function requireConsume(p: Principal | null, topic: string, channel: string): void {
  if (p && !canConsume(p, topic, channel)) throw new GatewayError('FORBIDDEN', { need: `consume:${topic}/${channel}` });
}

/**
 * Counts the request against its caller's budget in `family` (429 RATE_LIMITED when over). Called
 * after authentication, so an unknown key cannot use up a real key's budget.
 */
export function admit(d: ApiDeps, c: Call, family: LimitFamily, p: Principal | null): void {
  if (d.keyLimits) d.keyLimits.admit(family, limitKey(p, c.req), c.res);
}

export function service(k: ConsumeApi): Consumption {
  if (!k.consume.enabled) throw new GatewayError('CONSUME_DISABLED');
  if (k.consume.isClosing) throw new GatewayError('SHARD_UNAVAILABLE', { reason: 'the gateway is shutting down' });
  return k.consume;
}

