// Webhook intake: per-topic signature checks (GitHub's X-Hub-Signature-256, Stripe's
// Stripe-Signature, or a plain HMAC-SHA256 header) and the envelope that keeps the event's
// identifying headers with the message, so consumers can tell events apart.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import type { ValidateFunction } from 'ajv';
import { GatewayError } from './errors';

export type Provider = 'github' | 'stripe' | 'hmac';

export interface WebhookTopic {
  provider?: Provider;
  secret?: string;
  /** hmac: lower-case header name carrying the signature. */
  header: string;
  toleranceSec: number;
  envelope: boolean;
  eventHeader?: string;
  deliveryHeader?: string;
}

export const DEFAULT_WEBHOOK_TOPIC: WebhookTopic = { header: 'x-signature', toleranceSec: 300, envelope: true };

interface RawTopic {
  provider?: Provider;
  secret?: string;
  secret_env?: string;
  header?: string;
  tolerance?: number;
  envelope?: boolean;
  event_header?: string;
  delivery_header?: string;
}

export function parseWebhookConfig(doc: unknown, validate: ValidateFunction, env: NodeJS.ProcessEnv): Map<string, WebhookTopic> {
  if (!validate(doc)) throw new Error(`webhook config: ${JSON.stringify(validate.errors?.[0] ?? {})}`);
  const out = new Map<string, WebhookTopic>();
  for (const [topic, raw] of Object.entries((doc as { topics: Record<string, RawTopic> }).topics)) {
    let secret = raw.secret;
    if (raw.secret_env !== undefined) {
      secret = env[raw.secret_env];
      if (!secret) throw new Error(`webhook config: topic ${topic}: environment variable ${raw.secret_env} is not set`);
    }
    if (secret && !raw.provider) throw new Error(`webhook config: topic ${topic}: a secret needs a provider (github, stripe or hmac)`);
    if (!secret && raw.provider) throw new Error(`webhook config: topic ${topic}: provider ${raw.provider} needs a secret`);
    out.set(topic, {
      provider: raw.provider,
      secret,
      header: (raw.header ?? DEFAULT_WEBHOOK_TOPIC.header).toLowerCase(),
      toleranceSec: raw.tolerance ?? DEFAULT_WEBHOOK_TOPIC.toleranceSec,
      envelope: raw.envelope ?? true,
      eventHeader: raw.event_header?.toLowerCase(),
      deliveryHeader: raw.delivery_header?.toLowerCase(),
    });
  }
  return out;
}

export function loadWebhookConfig(file: string, validate: ValidateFunction, env: NodeJS.ProcessEnv): Map<string, WebhookTopic> {
  return parseWebhookConfig(JSON.parse(readFileSync(file, 'utf8')) as unknown, validate, env);
}

function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

function hmac(secret: string, ...parts: (string | Buffer)[]): Buffer {
  const m = createHmac('sha256', secret);
  for (const p of parts) m.update(p);
  return m.digest();
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A signature given as hex (optionally "sha256=…") or base64. */
function decodeSignature(text: string): Buffer | null {
  const t = text.trim().replace(/^sha256=/i, '');
  if (/^[0-9a-f]{64}$/i.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/]{43}=$/.test(t)) return Buffer.from(t, 'base64');
  return null;
}

/** Throws SIGNATURE_MISSING / SIGNATURE_INVALID unless the request is signed with the topic's secret. */
export function verifySignature(cfg: WebhookTopic, headers: IncomingHttpHeaders, body: Buffer, nowMs: number): void {
  if (!cfg.secret || !cfg.provider) return;
  const secret = cfg.secret;
  switch (cfg.provider) {
    case 'github': {
      const sig = header(headers, 'x-hub-signature-256');
      if (!sig) throw new GatewayError('SIGNATURE_MISSING', { header: 'X-Hub-Signature-256' });
      const m = /^sha256=([0-9a-f]{64})$/i.exec(sig.trim());
      if (!m || !equal(Buffer.from(m[1], 'hex'), hmac(secret, body))) throw new GatewayError('SIGNATURE_INVALID', { header: 'X-Hub-Signature-256' });
      return;
    }
    case 'stripe': {
      const sig = header(headers, 'stripe-signature');
      if (!sig) throw new GatewayError('SIGNATURE_MISSING', { header: 'Stripe-Signature' });
      let t: string | undefined;
      const v1: Buffer[] = [];
      for (const part of sig.split(',')) {
        const eq = part.indexOf('=');
        const k = part.slice(0, eq).trim();
        const v = part.slice(eq + 1).trim();
        if (k === 't') t = v;
        else if (k === 'v1' && /^[0-9a-f]{64}$/i.test(v)) v1.push(Buffer.from(v, 'hex'));
      }
      if (!t || !/^\d+$/.test(t) || v1.length === 0) throw new GatewayError('SIGNATURE_INVALID', { header: 'Stripe-Signature', reason: 'malformed' });
      const expected = hmac(secret, t, '.', body);
      if (!v1.some((s) => equal(s, expected))) throw new GatewayError('SIGNATURE_INVALID', { header: 'Stripe-Signature' });
      if (Math.abs(nowMs / 1000 - Number(t)) > cfg.toleranceSec) throw new GatewayError('SIGNATURE_INVALID', { header: 'Stripe-Signature', reason: 'timestamp outside the tolerance' });
      return;
    }
    case 'hmac': {
      const sig = header(headers, cfg.header);
      if (!sig) throw new GatewayError('SIGNATURE_MISSING', { header: cfg.header });
      const given = decodeSignature(sig);
      if (!given || !equal(given, hmac(secret, body))) throw new GatewayError('SIGNATURE_INVALID', { header: cfg.header });
      return;
    }
  }
}

const EVENT_HEADERS = ['x-github-event', 'x-gitlab-event', 'x-event-type', 'x-webhook-event'];
const DELIVERY_HEADERS = ['x-github-delivery', 'x-gitlab-event-uuid', 'webhook-id', 'x-delivery-id', 'x-request-id'];

export interface WebhookEvent {
  source: string;
  event?: string;
  delivery?: string;
  content_type?: string;
}

/** What identifies the event: the provider's headers, or for Stripe the event's own `type` and `id`. */
export function describeEvent(cfg: WebhookTopic, headers: IncomingHttpHeaders, json: unknown): WebhookEvent {
  const first = (names: (string | undefined)[]) => {
    for (const n of names) if (n) {
      const v = header(headers, n);
      if (v) return v;
    }
    return undefined;
  };
  const ev: WebhookEvent = { source: cfg.provider ?? 'webhook' };
  ev.event = first([cfg.eventHeader, ...EVENT_HEADERS]);
  ev.delivery = first([cfg.deliveryHeader, ...DELIVERY_HEADERS]);
  if (cfg.provider === 'stripe' && json && typeof json === 'object') {
    const o = json as { type?: unknown; id?: unknown };
    if (!ev.event && typeof o.type === 'string') ev.event = o.type;
    if (!ev.delivery && typeof o.id === 'string') ev.delivery = o.id;
  }
  const ct = header(headers, 'content-type');
  if (ct) ev.content_type = ct;
  return ev;
}

/**
 * The stored message: {"webhook":{source, event, delivery, content_type, received_at}, "body": …}.
 * A JSON body is spliced in byte for byte (not re-serialized, so signatures over it still hold);
 * any other body goes in "body_base64".
 */
export function envelope(ev: WebhookEvent, body: Buffer, isJson: boolean, receivedAtMs: number): Buffer {
  const meta = JSON.stringify({ ...ev, received_at: new Date(receivedAtMs).toISOString() });
  if (isJson) return Buffer.concat([Buffer.from(`{"webhook":${meta},"body":`), body, Buffer.from('}')]);
  return Buffer.from(`{"webhook":${meta},"body_base64":${JSON.stringify(body.toString('base64'))}}`);
}

/** Parses a JSON body, or answers undefined when it is not JSON. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function tryJson(body: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    // Strict decoding: bytes that are not UTF-8 must not pass as JSON (they are spliced verbatim).
    return { ok: true, value: JSON.parse(strictUtf8.decode(body)) as unknown };
  } catch {
    return { ok: false };
  }
}
