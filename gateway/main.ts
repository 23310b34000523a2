// `sluice gateway`: flags → a running gateway. Without --auth-file the gateway is open, so it
// binds to 127.0.0.1 unless told otherwise.

import { flag } from '../runtime/config';
import { defineProgram } from '../runtime/program';
import { createGateway, DEFAULT_GATEWAY_OPTIONS } from './app';
import { DEFAULT_PUBLISHER_OPTIONS } from './publish';
import { DEFAULT_SHARD_CLIENT_OPTIONS } from './shards';
import { DEFAULT_CONSUME_OPTIONS } from './consume';
import { ConfigError } from '../runtime/config';
import { httpTimeoutFlags } from '../runtime/http-server';

const MiB = 1024 * 1024;
export const DEFAULT_PORT = 4180;

export const gatewayFlags = {
  httpAddress: flag.string('', `address to listen on (default 127.0.0.1:${DEFAULT_PORT} without --auth-file, 0.0.0.0:${DEFAULT_PORT} with one)`),
  lookupdHttpAddress: flag.list([], 'lookup HTTP address to discover shards from (repeatable)'),
  shardHttpAddress: flag.list([], 'shard HTTP address to use without a lookup (repeatable)'),
  lookupdPollInterval: flag.duration(5000, 'how often the lookups are asked for the shards and their topics'),
  newTopicShards: flag.int(DEFAULT_PUBLISHER_OPTIONS.placementCount, 'how many shards a new topic is spread over', 1),
  topicSchemas: flag.string('', 'directory of per-topic JSON Schemas (<topic>.json); topics without one take any bytes'),
  authFile: flag.string('', 'JSON file of API keys (SHA-256 hashes) and their scopes; without it the gateway is open'),
  webhookConfig: flag.string('', 'JSON file of per-topic webhook settings (provider, secret or secret_env, envelope)'),
  maxMsgSize: flag.int(MiB, 'largest message in bytes', 1),
  maxBodySize: flag.int(5 * MiB, 'largest batch request body in bytes', 1),
  maxDefer: flag.duration(DEFAULT_GATEWAY_OPTIONS.maxDeferMs, 'longest defer a publish may ask for (keep <= the shards\' --max-req-timeout)'),
  shardTimeout: flag.duration(DEFAULT_SHARD_CLIENT_OPTIONS.timeoutMs, 'a shard call taking longer is aborted and counts as a failure'),
  shardConnections: flag.int(DEFAULT_SHARD_CLIENT_OPTIONS.connections, 'keep-alive connections per shard', 1),
  breakerReset: flag.duration(DEFAULT_SHARD_CLIENT_OPTIONS.resetMs, 'how long an open breaker waits before a trial call'),
  breakerErrorPercent: flag.int(DEFAULT_SHARD_CLIENT_OPTIONS.errorThresholdPercentage, 'failed calls (percent, rolling 10 s) that open a shard\'s breaker', 1, 100),
  breakerVolume: flag.int(DEFAULT_SHARD_CLIENT_OPTIONS.volumeThreshold, 'calls in the rolling window before a breaker may open', 0),
  shardInFlight: flag.int(DEFAULT_PUBLISHER_OPTIONS.maxInFlight, 'coalesced publish calls in flight per shard and topic; publishes arriving meanwhile share the next call', 1),
  maxPending: flag.int(DEFAULT_PUBLISHER_OPTIONS.maxPending, 'publishes waiting for a shard before new ones get 429', 1),
  receiptSecret: flag.list([], 'secret that signs consumers\' receipts, the same on every gateway of the cluster (16+ characters; repeatable: the first signs, all verify, for rotation). Without one, consuming is off'),
  corsOrigin: flag.list([], 'browser origin allowed to call this gateway, exactly scheme://host[:port] (repeatable)'),
  consumeLease: flag.duration(DEFAULT_CONSUME_OPTIONS.defaultLeaseMs, 'lease of a consumed message when the consumer does not ask (lease_ms)'),
  maxLease: flag.duration(DEFAULT_CONSUME_OPTIONS.maxLeaseMs, 'longest lease a consumer may ask for (keep <= the shards\' --max-msg-timeout)'),
  maxWait: flag.duration(DEFAULT_CONSUME_OPTIONS.maxWaitMs, 'longest long-poll wait a consumer may ask for (wait_ms)'),
  rateLimit: flag.int(0, 'requests per second allowed per API key (per client address without --auth-file) in each family — publishes, consuming (long-polls, stream opens), receipts (ack/requeue/touch) — each its own budget; 0 = no limit', 0),
  rateBurst: flag.int(0, 'requests a key may make at once above --rate-limit, per family (default: one second\'s worth)', 0),
  keyConcurrency: flag.int(0, 'requests in progress at once per API key in each family, open SSE streams and waiting long-polls included (the per-key connection limit); 0 = no limit', 0),
  gatewayId: flag.string('', 'this gateway\'s name in its consumer reports to the shards, unique in the cluster (default hostname:http-port)'),
  adminMaxViewers: flag.int(DEFAULT_GATEWAY_OPTIONS.adminMaxViewers, 'most admin pages following the live view at once (more get 503 TOO_MANY_VIEWERS with Retry-After)', 1),
  consumerReportInterval: flag.duration(DEFAULT_GATEWAY_OPTIONS.consumerReportIntervalMs, 'how often each shard is told about this gateway\'s SSE streams and long-polls (for the admin UI); 0 = never'),
  ...httpTimeoutFlags,
  logLevel: flag.string('info', 'log level: error, warn, info or debug'),
};

export const program = defineProgram({
  summary: 'Runs a gateway: the stateless HTTP/JSON front door. Publishes to shards found through lookups (see openapi.yaml).',
  flags: gatewayFlags,
  async run(config, logger) {
    const httpAddress = config.httpAddress || (config.authFile ? `0.0.0.0:${DEFAULT_PORT}` : `127.0.0.1:${DEFAULT_PORT}`);
    if (!config.authFile && !/^(127\.|\[::1\]|localhost)/.test(httpAddress)) logger.warn('no --auth-file: anyone who can reach this address can publish', { httpAddress });
    if (config.lookupdHttpAddress.length === 0 && config.shardHttpAddress.length === 0) logger.warn('no --lookupd-http-address or --shard-http-address: no shard to publish to');
    if (config.receiptSecret.some((s) => s.length < 16)) throw new ConfigError('--receipt-secret: use at least 16 characters (e.g. openssl rand -hex 32)');
    if (config.gatewayId !== '' && !/^[!-~]{1,128}$/.test(config.gatewayId)) throw new ConfigError('--gateway-id: 1-128 printable ASCII characters, no spaces');
    if (config.receiptSecret.length === 0) logger.warn('no --receipt-secret: consuming (long-poll, SSE, receipts) is off on this gateway');
    const gateway = createGateway(
      {
        httpAddress,
        lookupdHttpAddresses: config.lookupdHttpAddress,
        shardHttpAddresses: config.shardHttpAddress,
        lookupdPollIntervalMs: config.lookupdPollInterval,
        topicSchemas: config.topicSchemas,
        authFile: config.authFile,
        webhookConfig: config.webhookConfig,
        maxMsgSize: config.maxMsgSize,
        maxBodySize: config.maxBodySize,
        maxDeferMs: config.maxDefer,
        logRequests: config.logLevel === 'debug',
        consume: { receiptSecrets: config.receiptSecret, defaultLeaseMs: config.consumeLease, maxLeaseMs: config.maxLease, maxWaitMs: config.maxWait, defaultWaitMs: Math.min(DEFAULT_CONSUME_OPTIONS.defaultWaitMs, config.maxWait) },
        corsOrigins: config.corsOrigin,
        gatewayId: config.gatewayId,
        consumerReportIntervalMs: config.consumerReportInterval,
        adminMaxViewers: config.adminMaxViewers,
        httpTimeouts: { headersTimeoutMs: config.headerTimeout, requestTimeoutMs: config.requestTimeout },
        keyLimits: { ratePerSec: config.rateLimit, burst: config.rateBurst, maxConcurrent: config.keyConcurrency },
        shard: {
          connections: config.shardConnections,
          timeoutMs: config.shardTimeout,
          resetMs: config.breakerReset,
          errorThresholdPercentage: config.breakerErrorPercent,
          volumeThreshold: config.breakerVolume,
        },
        publisher: { ...DEFAULT_PUBLISHER_OPTIONS, placementCount: config.newTopicShards, maxPending: config.maxPending, maxInFlight: config.shardInFlight },
      },
      { logger },
    );
    const { http } = await gateway.start();
    logger.info('listening', { http, lookups: config.lookupdHttpAddress, auth: Boolean(config.authFile) });
    return gateway;
  },
});
