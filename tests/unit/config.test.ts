import { ConfigError, flag, helpText, parseConfig, parseDuration, parseHostPort } from '../../runtime/config';
import { redact } from '../../runtime/logger';

const spec = {
  memQueueSize: flag.int(10000, 'queue', 0),
  msgTimeout: flag.duration(60_000, 'timeout'),
  verbose: flag.bool(false, 'talk'),
  lookupdTcpAddress: flag.list([], 'lookups'),
  name: flag.string('x', 'name'),
};

describe('config', () => {
  it('uses defaults, then environment, then flags', () => {
    expect(parseConfig(spec, []).config).toEqual({ memQueueSize: 10000, msgTimeout: 60_000, verbose: false, lookupdTcpAddress: [], name: 'x' });
    const env = { SLUICE_MEM_QUEUE_SIZE: '5', SLUICE_LOOKUPD_TCP_ADDRESS: 'a:1, b:2', SLUICE_MSG_TIMEOUT: '2s' };
    expect(parseConfig(spec, [], env).config).toMatchObject({ memQueueSize: 5, lookupdTcpAddress: ['a:1', 'b:2'], msgTimeout: 2000 });
    const { config, args } = parseConfig(spec, ['--mem-queue-size', '7', '--verbose', '--lookupd-tcp-address=c:3', '--lookupd-tcp-address', 'd:4', 'extra'], env);
    expect(config).toMatchObject({ memQueueSize: 7, verbose: true, lookupdTcpAddress: ['c:3', 'd:4'] });
    expect(args).toEqual(['extra']);
    expect(parseConfig(spec, ['--help']).help).toBe(true);
  });

  it('rejects unknown flags and bad values with a message naming the flag', () => {
    expect(() => parseConfig(spec, ['--nope'])).toThrow(new ConfigError('unknown flag --nope'));
    expect(() => parseConfig(spec, ['--mem-queue-size', 'many'])).toThrow(/--mem-queue-size: expected an integer/);
    expect(() => parseConfig(spec, ['--mem-queue-size', '-1'])).toThrow(/must be >= 0/);
    expect(() => parseConfig(spec, ['--msg-timeout', 'soon'])).toThrow(/--msg-timeout: invalid duration/);
    expect(() => parseConfig(spec, ['--name'])).toThrow(/needs a value/);
    expect(() => parseConfig(spec, [], { SLUICE_VERBOSE: 'maybe' })).toThrow(/expected true or false/);
  });

  it('parses Go-style durations and host:port', () => {
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('1500')).toBe(1500);
    expect(() => parseDuration('5 s')).toThrow();
    expect(parseHostPort('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseHostPort('[::1]:4150')).toEqual({ host: '::1', port: 4150 });
    expect(parseHostPort(':4151')).toEqual({ host: '0.0.0.0', port: 4151 });
    expect(() => parseHostPort('nohost')).toThrow(ConfigError);
  });

  it('prints every flag with its default and environment variable', () => {
    const text = helpText('shard', 'Runs a shard.', spec);
    expect(text).toContain('--mem-queue-size <int>');
    expect(text).toContain('(default 10000; env SLUICE_MEM_QUEUE_SIZE)');
    expect(text).toContain('--lookupd-tcp-address <list>');
  });
});

describe('log redaction', () => {
  it('masks credentials in fields, nested objects and query strings', () => {
    expect(redact({ authorization: 'Bearer abc', nested: { token: 't', ok: 1 }, url: '/x?topic=a&token=sekrit&b=2' })).toEqual({
      authorization: '[REDACTED]',
      nested: { token: '[REDACTED]', ok: 1 },
      url: '/x?topic=a&token=[REDACTED]&b=2',
    });
  });
});

describe('logger levels', () => {
  it('keeps debug off unless asked for, and always lets the listening record through', () => {
    const { createLogger } = require('../../runtime/logger') as typeof import('../../runtime/logger');
    expect(createLogger('x', 'warn').isDebugEnabled()).toBe(false);
    expect(createLogger('x', 'info').isDebugEnabled()).toBe(false);
    expect(createLogger('x', 'debug').isDebugEnabled()).toBe(true);
  });
});
