// API keys and scopes (gateway/auth.ts) and webhook signatures and envelopes (gateway/webhooks.ts),
// as pure functions: no server, fixed clocks.

import { createHash, createHmac } from 'node:crypto';
import { Auth, canConsume, canPublish, isAdmin, namePattern } from '../../gateway/auth';
import { GatewayError } from '../../gateway/errors';
import { Schemas } from '../../gateway/schemas';
import { describeEvent, envelope, parseWebhookConfig, tryJson, verifySignature, WebhookTopic } from '../../gateway/webhooks';

const schemas = new Schemas();
const hex = (s: string) => createHash('sha256').update(s).digest('hex');

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof GatewayError ? err.code : 'not a GatewayError';
  }
}

describe('auth', () => {
  const auth = Auth.fromDocument(
    {
      keys: [
        { name: 'pub', sha256: hex('key-pub'), scopes: ['publish:orders', 'publish:events.*'] },
        { name: 'con', sha256: hex('key-con'), scopes: ['consume:orders/billing-*'] },
        { name: 'root', sha256: hex('key-root'), scopes: ['admin'] },
      ],
    },
    schemas.authFile,
  );

  it('identifies keys by their hash and refuses others', () => {
    expect(auth.authenticate('Bearer key-pub').name).toBe('pub');
    expect(auth.authenticate('bearer   key-root').name).toBe('root');
    expect(codeOf(() => auth.authenticate('Bearer nope'))).toBe('UNAUTHENTICATED');
    expect(codeOf(() => auth.authenticate('Basic a2V5LXB1Yg=='))).toBe('UNAUTHENTICATED');
    expect(codeOf(() => auth.authenticate(undefined))).toBe('UNAUTHENTICATED');
    expect(auth.authenticate(undefined, 'key-pub').name).toBe('pub');
  });

  it('anchors scope patterns to the whole name', () => {
    const pub = auth.authenticate('Bearer key-pub');
    expect(canPublish(pub, 'orders')).toBe(true);
    expect(canPublish(pub, 'orders-evil')).toBe(false);
    expect(canPublish(pub, 'xorders')).toBe(false);
    expect(canPublish(pub, 'events.signup')).toBe(true);
    expect(canPublish(pub, 'eventsXsignup')).toBe(false);
    expect(canConsume(pub, 'orders', 'billing')).toBe(false);
    const con = auth.authenticate('Bearer key-con');
    expect(canConsume(con, 'orders', 'billing-eu')).toBe(true);
    expect(canConsume(con, 'orders', 'shipping')).toBe(false);
    expect(canPublish(con, 'orders')).toBe(false);
    const root = auth.authenticate('Bearer key-root');
    expect(isAdmin(root) && canPublish(root, 'anything') && canConsume(root, 'a', 'b')).toBe(true);
    expect(namePattern('a.b').test('aXb')).toBe(false);
  });

  it('rejects an auth file that does not match its schema', () => {
    expect(() => Auth.fromDocument({ keys: [{ name: 'x', sha256: 'short', scopes: [] }] }, schemas.authFile)).toThrow(/auth file/);
    expect(() => Auth.fromDocument({ keys: [{ name: 'x', sha256: hex('k'), scopes: ['publish:bad/scope'] }] }, schemas.authFile)).toThrow(/auth file/);
  });
});

describe('webhook signatures', () => {
  const cfg = parseWebhookConfig(
    {
      topics: {
        gh: { provider: 'github', secret: 'gh-secret' },
        st: { provider: 'stripe', secret_env: 'ST_SECRET', tolerance: 300 },
        plain: { provider: 'hmac', secret: 'p-secret', header: 'X-My-Signature' },
        raw: { envelope: false },
      },
    },
    schemas.webhookConfig,
    { ST_SECRET: 'whsec_test' },
  );
  const body = Buffer.from('{"action":"opened","n":1.50}');
  const now = 1_700_000_000_000;
  const sign = (secret: string, ...parts: (string | Buffer)[]) => {
    const h = createHmac('sha256', secret);
    for (const p of parts) h.update(p);
    return h.digest('hex');
  };
  const check = (topic: string, headers: Record<string, string>) => codeOf(() => verifySignature(cfg.get(topic) as WebhookTopic, headers, body, now)) ?? 'OK';

  it('GitHub: X-Hub-Signature-256', () => {
    expect(check('gh', { 'x-hub-signature-256': `sha256=${sign('gh-secret', body)}` })).toBe('OK');
    expect(check('gh', { 'x-hub-signature-256': `sha256=${sign('wrong', body)}` })).toBe('SIGNATURE_INVALID');
    expect(check('gh', { 'x-hub-signature-256': 'garbage' })).toBe('SIGNATURE_INVALID');
    expect(check('gh', {})).toBe('SIGNATURE_MISSING');
  });

  it('Stripe: Stripe-Signature with a timestamp inside the tolerance', () => {
    const t = String(now / 1000);
    expect(check('st', { 'stripe-signature': `t=${t},v1=${sign('whsec_test', t, '.', body)}` })).toBe('OK');
    expect(check('st', { 'stripe-signature': `t=${t},v1=${'0'.repeat(64)},v1=${sign('whsec_test', t, '.', body)}` })).toBe('OK');
    expect(check('st', { 'stripe-signature': `t=${t},v1=${sign('other', t, '.', body)}` })).toBe('SIGNATURE_INVALID');
    const old = String(now / 1000 - 301);
    expect(check('st', { 'stripe-signature': `t=${old},v1=${sign('whsec_test', old, '.', body)}` })).toBe('SIGNATURE_INVALID');
    expect(check('st', {})).toBe('SIGNATURE_MISSING');
  });

  it('plain HMAC in a configurable header, hex or base64', () => {
    expect(check('plain', { 'x-my-signature': sign('p-secret', body) })).toBe('OK');
    expect(check('plain', { 'x-my-signature': Buffer.from(sign('p-secret', body), 'hex').toString('base64') })).toBe('OK');
    expect(check('plain', { 'x-my-signature': sign('nope', body) })).toBe('SIGNATURE_INVALID');
    expect(check('plain', { 'x-signature': sign('p-secret', body) })).toBe('SIGNATURE_MISSING');
    expect(check('raw', {})).toBe('OK');
  });

  it('refuses a config whose secret is missing or whose provider is unknown', () => {
    expect(() => parseWebhookConfig({ topics: { a: { provider: 'stripe', secret_env: 'NOPE' } } }, schemas.webhookConfig, {})).toThrow(/NOPE/);
    expect(() => parseWebhookConfig({ topics: { a: { provider: 'gitlab', secret: 'x' } } }, schemas.webhookConfig, {})).toThrow(/webhook config/);
    expect(() => parseWebhookConfig({ topics: { a: { secret: 'x' } } }, schemas.webhookConfig, {})).toThrow(/provider/);
  });
});

describe('webhook envelope', () => {
  const gh: WebhookTopic = { provider: 'github', secret: 's', header: 'x-signature', toleranceSec: 300, envelope: true };

  it('keeps the event headers and splices a JSON body in byte for byte', () => {
    const body = Buffer.from('{ "n": 1.50, "big": 12345678901234567890 }');
    const ev = describeEvent(gh, { 'x-github-event': 'push', 'x-github-delivery': 'd-1', 'content-type': 'application/json' }, JSON.parse(body.toString()));
    const out = envelope(ev, body, true, 0);
    expect(out.toString()).toContain('"body":{ "n": 1.50, "big": 12345678901234567890 }}');
    const parsed = JSON.parse(out.toString()) as { webhook: Record<string, unknown> };
    expect(parsed.webhook).toEqual({ source: 'github', event: 'push', delivery: 'd-1', content_type: 'application/json', received_at: '1970-01-01T00:00:00.000Z' });
  });

  it('takes a Stripe event type and id from the body, and base64-encodes a body that is not JSON', () => {
    const st: WebhookTopic = { ...gh, provider: 'stripe' };
    const ev = describeEvent(st, {}, { id: 'evt_1', type: 'charge.succeeded' });
    expect([ev.event, ev.delivery]).toEqual(['charge.succeeded', 'evt_1']);
    const bin = Buffer.from([0xff, 0x00, 0x7b]);
    expect(tryJson(bin).ok).toBe(false);
    const parsed = JSON.parse(envelope(ev, bin, false, 0).toString()) as { body_base64: string };
    expect(Buffer.from(parsed.body_base64, 'base64').equals(bin)).toBe(true);
  });
});
