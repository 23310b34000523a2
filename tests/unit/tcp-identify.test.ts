// IDENTIFY as nsqd reads it: Go-json-like parsing of the body, each setting against nsqd's
// bounds in nsqd's order, feature negotiation and the answer's fields.

import { applyIdentify, negotiate, negotiationResponse, parseIdentify, type ClientSettings, type IdentifyData, type IdentifyLimits, type ServerFeatures } from '../../shard/tcp/identify';

const LIMITS: IdentifyLimits = {
  maxHeartbeatIntervalMs: 60_000,
  maxOutputBufferSize: 65_536,
  minOutputBufferTimeoutMs: 25,
  maxOutputBufferTimeoutMs: 30_000,
  maxMsgTimeoutMs: 900_000,
};
const DEFAULTS: ClientSettings = {
  clientId: '10.0.0.1',
  hostname: '10.0.0.1',
  userAgent: '',
  heartbeatIntervalMs: 30_000,
  outputBufferSize: 16_384,
  outputBufferTimeoutMs: 250,
  sampleRate: 0,
  msgTimeoutMs: 60_000,
};
const FEATURES: ServerFeatures = { version: '1.3.0', maxRdyCount: 2500, maxMsgTimeoutMs: 900_000, tls: true, deflate: true, maxDeflateLevel: 6, snappy: true, authRequired: false };

function data(json: unknown): IdentifyData {
  const d = parseIdentify(Buffer.from(JSON.stringify(json)));
  if ('type' in d) throw new Error(d.text);
  return d;
}

function errorText(r: unknown): string {
  return (r as { code: string; text: string }).code + ' ' + (r as { text: string }).text;
}

describe('parseIdentify', () => {
  it('fills nsqd fields like json.Unmarshal: unknown keys ignored, keys case-insensitive, null keeps zero', () => {
    const d = data({ Client_ID: 'a', hostname: null, heartbeat_interval: 5000, feature_negotiation: true, other: { x: 1 } });
    expect(d).toMatchObject({ client_id: 'a', hostname: '', heartbeat_interval: 5000, feature_negotiation: true, sample_rate: 0 });
    expect(parseIdentify(Buffer.from('null'))).toMatchObject({ client_id: '', msg_timeout: 0 });
  });

  it('refuses what Go refuses: bad JSON, non-objects, wrong types, fractions, int32 overflow', () => {
    for (const body of ['{', '[]', '"x"', '{"client_id":1}', '{"tls_v1":"yes"}', '{"msg_timeout":1.5}', '{"sample_rate":4294967296}', '{"deflate_level":"6"}']) {
      expect(errorText(parseIdentify(Buffer.from(body)))).toBe('E_BAD_BODY IDENTIFY failed to decode JSON body');
    }
  });
});

describe('applyIdentify', () => {
  it('keeps defaults for 0, disables with -1 where nsqd allows it, and takes values in range', () => {
    expect(applyIdentify(DEFAULTS, data({}), LIMITS)).toEqual({ ...DEFAULTS, clientId: '', hostname: '' });
    expect(applyIdentify(DEFAULTS, data({ heartbeat_interval: -1, output_buffer_size: -1, output_buffer_timeout: -1 }), LIMITS)).toMatchObject({
      heartbeatIntervalMs: 0,
      outputBufferSize: 1,
      outputBufferTimeoutMs: 0,
    });
    const s = applyIdentify(DEFAULTS, data({ client_id: 'c', hostname: 'h', user_agent: 'u', heartbeat_interval: 1000, output_buffer_size: 64, output_buffer_timeout: 25, sample_rate: 99, msg_timeout: 1000 }), LIMITS);
    expect(s).toEqual({ clientId: 'c', hostname: 'h', userAgent: 'u', heartbeatIntervalMs: 1000, outputBufferSize: 64, outputBufferTimeoutMs: 25, sampleRate: 99, msgTimeoutMs: 1000 });
  });

  it('refuses out-of-range settings with nsqd texts, the first in nsqd order', () => {
    const cases: [Record<string, number>, string][] = [
      [{ heartbeat_interval: 999 }, 'heartbeat interval (999) is invalid'],
      [{ heartbeat_interval: -2 }, 'heartbeat interval (-2) is invalid'],
      [{ heartbeat_interval: 60_001 }, 'heartbeat interval (60001) is invalid'],
      [{ output_buffer_size: 63 }, 'output buffer size (63) is invalid'],
      [{ output_buffer_size: 65_537 }, 'output buffer size (65537) is invalid'],
      [{ output_buffer_timeout: 24 }, 'output buffer timeout (24) is invalid'],
      [{ output_buffer_timeout: 30_001 }, 'output buffer timeout (30001) is invalid'],
      [{ sample_rate: -1 }, 'sample rate (-1) is invalid'],
      [{ sample_rate: 100 }, 'sample rate (100) is invalid'],
      [{ msg_timeout: 999 }, 'msg timeout (999) is invalid'],
      [{ msg_timeout: -1 }, 'msg timeout (-1) is invalid'],
      [{ msg_timeout: 900_001 }, 'msg timeout (900001) is invalid'],
      [{ msg_timeout: 1, heartbeat_interval: 1 }, 'heartbeat interval (1) is invalid'],
      [{ msg_timeout: 1, sample_rate: 100 }, 'sample rate (100) is invalid'],
    ];
    for (const [json, text] of cases) expect(errorText(applyIdentify(DEFAULTS, data(json), LIMITS))).toBe(`E_BAD_BODY IDENTIFY ${text}`);
  });
});

describe('negotiate', () => {
  it('offers a feature only when both sides want it; deflate level defaults to 6 and is capped', () => {
    expect(negotiate(data({ tls_v1: true, deflate: true, deflate_level: 9 }), FEATURES)).toEqual({ tls: true, deflate: true, deflateLevel: 6, snappy: false });
    expect(negotiate(data({ deflate: true, deflate_level: 2 }), FEATURES)).toMatchObject({ deflate: true, deflateLevel: 2 });
    expect(negotiate(data({ deflate: true }), { ...FEATURES, maxDeflateLevel: 3 })).toMatchObject({ deflateLevel: 3 });
    expect(negotiate(data({ tls_v1: true, snappy: true }), { ...FEATURES, tls: false })).toEqual({ tls: false, deflate: false, deflateLevel: 6, snappy: true });
    expect(negotiate(data({ deflate: true, snappy: true }), { ...FEATURES, snappy: false })).toMatchObject({ deflate: true, snappy: false });
    expect(errorText(negotiate(data({ deflate: true, snappy: true }), FEATURES))).toBe('E_IDENTIFY_FAILED cannot enable both deflate and snappy compression');
  });

  it('answers with nsqd fields in nsqd order', () => {
    const n = negotiate(data({ snappy: true }), FEATURES);
    if ('type' in n) throw new Error('unexpected');
    expect(negotiationResponse(DEFAULTS, n, FEATURES)).toBe(
      '{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,' +
        '"max_deflate_level":6,"snappy":true,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250}',
    );
  });
});
