// What every utility shares: the streams and exit it is handed by bin/ (so only bin/ touches
// `process`), the discovery and gateway flags and the consumer they choose, progress reports on
// stderr, and short-flag aliases like -n.

import { ConfigError, flag, parseHostPort } from '../runtime/config';
import type { Logger } from '../runtime/logger';
import { Consumer, type ConsumerOptions } from '../client/consumer';
import { errorText, GatewayCallError } from '../client/errors';
import { GatewayConsumer } from '../client/gateway-consumer';
import { parseGatewayUrl } from '../client/gateway-http';
import type { MessageSource } from '../client/source';
import { isValidName } from '../wire/names';

/** The process as a tool sees it; bin/sluice.ts passes `process`, tests can pass fakes. */
export interface ToolIO {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  /** Ends the process (after the tool has closed everything). */
  exit(code: number): void;
}

export const discoveryFlags = {
  lookupdHttpAddress: flag.list([], 'lookup HTTP address to discover shards through (repeatable)'),
  nsqdTcpAddress: flag.list([], 'shard TCP address to connect to directly (repeatable)'),
  lookupdPollInterval: flag.duration(60_000, 'how often the lookups are asked again for the topic’s shards'),
};

/** Gateway mode: the same work over HTTP through a gateway instead of NSQ TCP to the shards. */
export const gatewayFlags = {
  gateway: flag.string('', 'gateway base URL (http:// or https://) to work through over HTTP, instead of the shard/lookup flags'),
  gatewayToken: flag.string('', 'API key for --gateway, sent as "Authorization: Bearer"; prefer the environment variable (argv is visible to other users)'),
};

export interface GatewayTarget {
  url: string;
  /** '' when none was given. */
  token: string;
}

/**
 * Gateway mode or not: returns the gateway when --gateway is given (and then no TCP/lookup flag
 * may be), null otherwise. `tcpFlags` names the tool's other flags for the error message.
 */
export function gatewayTarget(c: { gateway: string; gatewayToken: string }, tcpGiven: boolean, tcpFlags: string): GatewayTarget | null {
  if (c.gateway === '') {
    if (c.gatewayToken !== '') throw new ConfigError('--gateway-token (SLUICE_GATEWAY_TOKEN) is only used with --gateway');
    if (!tcpGiven) throw new ConfigError(`give --gateway or ${tcpFlags}`);
    return null;
  }
  if (tcpGiven) throw new ConfigError(`give either --gateway or ${tcpFlags}, not both`);
  try {
    parseGatewayUrl(c.gateway);
  } catch (err) {
    throw new ConfigError(`--gateway: ${errorText(err)}`);
  }
  // the key goes into a header as it is: refuse what would break it (or smuggle another header)
  if (c.gatewayToken !== '' && !/^[\x21-\x7e]+$/.test(c.gatewayToken)) throw new ConfigError('--gateway-token: printable ASCII without spaces expected');
  return { url: c.gateway, token: c.gatewayToken };
}

export const commonFlags = {
  progressInterval: flag.duration(5_000, 'how often counts and rates are logged on stderr (0: never)'),
  logLevel: flag.string('info', 'log verbosity: debug, info, warn or error (logs are JSON lines on stderr)'),
};

/** --topic, which every tool needs: present and a valid name. */
export function requireTopic(topic: string): string {
  if (topic === '') throw new ConfigError('--topic is required');
  return validName(topic, 'topic');
}

/** A topic or channel name as NSQ allows it, or a ConfigError naming it. */
export function validName(name: string, what: 'topic' | 'channel'): string {
  if (!isValidName(name)) throw new ConfigError(`invalid ${what} name "${name}"`);
  return name;
}

/** The consumer options the discovery flags give; at least one source is required. */
export function discoveryOptions(c: { lookupdHttpAddress: string[]; nsqdTcpAddress: string[]; lookupdPollInterval: number }): Pick<
  ConsumerOptions,
  'lookupdHttpAddresses' | 'nsqdTcpAddresses' | 'lookupdPollIntervalMs'
> {
  if (c.lookupdHttpAddress.length + c.nsqdTcpAddress.length === 0)
    throw new ConfigError('give --gateway, --lookupd-http-address or --nsqd-tcp-address');
  for (const a of c.nsqdTcpAddress) parseHostPort(a);
  return { lookupdHttpAddresses: c.lookupdHttpAddress, nsqdTcpAddresses: c.nsqdTcpAddress, lookupdPollIntervalMs: c.lookupdPollInterval };
}

type SourceConfig = { lookupdHttpAddress: string[]; nsqdTcpAddress: string[]; lookupdPollInterval: number; gateway: string; gatewayToken: string };
type SourceOptions = Pick<ConsumerOptions, 'topic' | 'channel' | 'maxInFlight' | 'maxAttempts' | 'backoffMultiplierMs' | 'maxBackoffMs' | 'userAgent'>;

/** The consumer the flags ask for: through the gateway (--gateway) or straight to the shards. */
export function openSource(c: SourceConfig, o: SourceOptions): MessageSource {
  const gw = gatewayTarget(c, c.lookupdHttpAddress.length + c.nsqdTcpAddress.length > 0, '--lookupd-http-address or --nsqd-tcp-address');
  if (gw) return new GatewayConsumer({ ...o, gatewayUrl: gw.url, token: gw.token || undefined });
  return new Consumer({ ...o, ...discoveryOptions(c) });
}

/**
 * Short aliases (`-n 10`) arrive as positional arguments (the flag parser only knows --long
 * ones): returns the value of each alias found, and refuses any other positional argument.
 */
export function shortFlags(args: readonly string[], aliases: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const name = aliases[args[i]];
    if (name === undefined) throw new ConfigError(`unexpected argument "${args[i]}"`);
    if (i + 1 >= args.length) throw new ConfigError(`${args[i]} needs a value`);
    out[name] = args[++i];
  }
  return out;
}

export function parseCount(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new ConfigError(`${what}: expected a non-negative integer, got "${text}"`);
  return Number(text);
}

/**
 * Counters logged every `intervalMs` as one structured "progress" line with totals and per-second
 * rates over the last interval, and once more (totals and overall rates) by `final()`.
 */
export class Progress {
  private readonly counts: Record<string, number> = {};
  private last: Record<string, number> = {};
  private lastAt: number;
  private readonly startedAt: number;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly logger: Logger,
    names: readonly string[],
    intervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    for (const n of names) this.counts[n] = 0;
    this.startedAt = this.lastAt = now();
    this.last = { ...this.counts };
    if (intervalMs > 0) {
      this.timer = setInterval(() => this.report(), intervalMs);
      this.timer.unref();
    }
  }

  add(name: string, n = 1): void {
    this.counts[name] = (this.counts[name] ?? 0) + n;
  }

  get(name: string): number {
    return this.counts[name] ?? 0;
  }

  /** Totals and rates since the last report. */
  snapshot(): Record<string, number> {
    const t = this.now();
    const secs = Math.max((t - this.lastAt) / 1000, 1e-3);
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.counts)) {
      out[k] = v;
      out[`${k}_per_s`] = Math.round(((v - (this.last[k] ?? 0)) / secs) * 10) / 10;
    }
    this.last = { ...this.counts };
    this.lastAt = t;
    return out;
  }

  report(): void {
    this.logger.info('progress', this.snapshot());
  }

  /** Stops the timer and logs the totals with overall rates. */
  final(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.last = {};
    this.lastAt = this.startedAt;
    this.logger.info('done', this.snapshot());
  }
}

/** Runs `fn` (the tool's own close) once and then ends the process with `code`. */
export function finishOnce(io: ToolIO, logger: Logger, close: () => Promise<void>): (code: number) => Promise<void> {
  let done: Promise<void> | null = null;
  return (code) => {
    done ??= close().then(
      () => exitAfterFlush(io, code),
      (err: unknown) => {
        logger.error('error while closing', { error: err instanceof Error ? err.message : String(err) });
        exitAfterFlush(io, code || 1);
      },
    );
    return done;
  };
}

function exitAfterFlush(io: ToolIO, code: number): void {
  // an empty write's callback runs once everything written before it has been handed to the OS
  io.stdout.write('', () => setImmediate(() => io.exit(code)));
}

/** Logs a consumer's connections and errors (shared by the consuming tools). */
export function watch(c: MessageSource, logger: Logger): MessageSource {
  c.on('connected', (address) => logger.info('connected', { address, topic: c.topic, channel: c.channel }));
  c.on('disconnected', (address, err) => (err ? logger.warn('disconnected', { address, error: err.message }) : logger.info('disconnected', { address })));
  c.on('error', (err) =>
    logger.warn('consumer error', {
      code: err.code,
      nsq_code: err.nsqCode || undefined,
      status: err instanceof GatewayCallError ? err.status : undefined,
      api_code: err instanceof GatewayCallError ? err.apiCode || undefined : undefined,
      error: err.message,
    }),
  );
  c.on('backoff', (level, ms) => logger.debug('backing off', { level, pause_ms: ms }));
  return c;
}
