// Wires a shard together: the file store and engine, the nsqd-compatible HTTP API with Sluice's
// extensions (lease, publish, channel settings, HTTP consumer reports, metrics), the TCP protocol
// server and lookup registration; start() listens, close() persists and shuts down.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, flagName, parseHostPort } from '../runtime/config';
import type { Logger } from '../runtime/logger';
import { Engine, ENGINE_VERSION } from './engine/engine';
import { FileStore } from './engine/file-store';
import { LEASE_PREFIX, registerLeaseApi } from './http/lease-api';
import { registerChannelApi } from './http/channel-api';
import { registerConsumersApi } from './http/consumers-api';
import { HttpConsumerRegistry } from './http/http-consumers';
import { createShardMetrics, registerMetricsRoute } from './http/metrics';
import { registerNsqdApi } from './http/nsqd-api';
import { registerPublishApi } from './http/publish-api';
import type { ShardIdentity } from './http/stats';
import { Router } from './http/router';
import { AuthClient, authenticator } from './tcp/auth';
import { compressStreams } from './tcp/compression';
import { TcpServer } from './tcp/server';
import { buildServerTls, tlsUpgrade } from './tcp/tls';
import { defaultNodeId, ShardConfig, shardFlags } from './flags';
import type { Holding } from './lookup-peer';
import { holdingsOf, LookupRegistration } from './registration';
import { SLUICE_VERSION } from '../runtime/version';
import { saveIdempotencyKeys, takeIdempotencyKeys } from './idempotency-file';
import { httpServerOptions } from '../runtime/http-server';

export interface Shard {
  engine: Engine;
  start(): Promise<{ http: string; tcp: string }>;
  close(): Promise<void>;
}

function optionKey(cfgName: string): keyof ShardConfig | undefined {
  return (Object.keys(shardFlags) as (keyof ShardConfig)[]).find((k) => flagName(k).replace(/-/g, '_') === cfgName);
}

export function createShard(config: ShardConfig, logger: Logger): Shard {
  const dataPath = path.resolve(config.dataPath || '.');
  const store = new FileStore({
    dataPath,
    maxBytesPerFile: config.maxBytesPerFile,
    maxMsgSize: config.maxMsgSize,
    syncEvery: config.syncEvery,
    syncTimeoutMs: config.syncTimeout,
    onCorrupt: (info) => logger.error('corrupt record skipped', info),
    // Durable mode: nothing lives only in memory, in-flight and deferred messages included.
    journal: config.memQueueSize === 0,
  });
  const registration: LookupRegistration = new LookupRegistration(
    config.lookupdTcpAddress,
    { pingIntervalMs: config.lookupPingInterval },
    {
      logger: logger.child({ subsystem: 'registration' }),
      announcement: () => {
        const { broadcast_address, hostname, tcp_port, http_port, version } = identity();
        return { broadcast_address, hostname, tcp_port, http_port, version };
      },
      holdings: (): Holding[] => holdingsOf(engine),
    },
  );
  const engine = new Engine(
    {
      memQueueSize: config.memQueueSize,
      msgTimeoutMs: config.msgTimeout,
      maxMsgTimeoutMs: config.maxMsgTimeout,
      maxReqTimeoutMs: config.maxReqTimeout,
      ephemeralLeaseGraceMs: config.leaseGrace,
    },
    {
      store,
      workerId: config.nodeId >= 0 ? config.nodeId : defaultNodeId(`${os.hostname()}:${dataPath}`),
      channelsElsewhere: (topic) => registration.channelsElsewhere(topic),
      onStorageError: (err) => logger.error('storage write failed', { error: err.message }),
    },
  );
  engine.addListener(registration);
  // The gateways' reports of their HTTP consumers; a deleted channel or topic drops its entries.
  const httpConsumers = new HttpConsumerRegistry(() => performance.now());
  engine.addListener(httpConsumers);
  const startTime = Math.floor(Date.now() / 1000);
  let httpPort = 0;
  let tcpPort = 0;

  const identity = (): ShardIdentity => ({
    version: ENGINE_VERSION,
    broadcast_address: config.broadcastAddress,
    hostname: os.hostname(),
    http_port: httpPort,
    tcp_port: tcpPort,
    start_time: startTime,
    sluice: { version: SLUICE_VERSION, lease_api: LEASE_PREFIX },
  });

  const router = new Router();
  registerNsqdApi(router, {
    engine,
    maxMsgSize: config.maxMsgSize,
    maxBodySize: config.maxBodySize,
    maxReqTimeoutMs: config.maxReqTimeout,
    identity,
    health: () => engine.health(),
    getOption: (name) => {
      if (name === 'nsqlookupd_tcp_addresses') return config.lookupdTcpAddress;
      const key = optionKey(name);
      return key === undefined ? undefined : config[key];
    },
    setOption: (name, value) => {
      if (name !== 'nsqlookupd_tcp_addresses') return false;
      if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) return false;
      try {
        registration.setAddresses(value as string[]);
      } catch {
        return false;
      }
      config.lookupdTcpAddress = value as string[];
      return true;
    },
    producers: () => tcpServer.producers(),
    httpConsumers: (topic, channel) => httpConsumers.channel(topic, channel),
  });
  registerLeaseApi(router, { engine, defaultLeaseMs: config.msgTimeout });
  registerMetricsRoute(router, createShardMetrics(engine, (topic, channel) => httpConsumers.channel(topic, channel)));
  registerChannelApi(router, engine);
  registerConsumersApi(router, httpConsumers);
  const idempotency = registerPublishApi(router, engine, config);
  const restored = takeIdempotencyKeys(dataPath);
  if (restored.problem) logger.warn('idempotency keys from the last shutdown ignored', { error: restored.problem });
  idempotency.restore(restored.keys);

  const httpServer = http.createServer(httpServerOptions(65_000, { headersTimeoutMs: config.headerTimeout, requestTimeoutMs: config.requestTimeout }), (req, res) => {
    res.on('sluice:internal-error', (err: unknown) => logger.error('request failed', { path: req.url, error: err instanceof Error ? err.stack : String(err) }));
    router.handle(req, res);
  });

  const serverTls = buildServerTls(config);
  const authMethod = config.authHttpRequestMethod.toLowerCase();
  if (authMethod !== 'get' && authMethod !== 'post') throw new ConfigError('--auth-http-request-method must be get or post');
  const authClient = new AuthClient({ addresses: config.authHttpAddress, method: authMethod });
  const tcpServer = new TcpServer(
    {
      address: config.tcpAddress,
      maxRdyCount: config.maxRdyCount,
      maxMsgSize: config.maxMsgSize,
      maxBodySize: config.maxBodySize,
      maxReqTimeoutMs: config.maxReqTimeout,
      msgTimeoutMs: config.msgTimeout,
      maxMsgTimeoutMs: config.maxMsgTimeout,
      heartbeatIntervalMs: 30_000, // nsqd: --client-timeout (60s) / 2
      maxHeartbeatIntervalMs: config.maxHeartbeatInterval,
      outputBufferSize: 16 * 1024, // nsqd's defaultBufferSize
      outputBufferTimeoutMs: config.outputBufferTimeout,
      maxOutputBufferSize: config.maxOutputBufferSize,
      minOutputBufferTimeoutMs: config.minOutputBufferTimeout,
      maxOutputBufferTimeoutMs: config.maxOutputBufferTimeout,
      maxChannelConsumers: config.maxChannelConsumers,
      tlsRequired: serverTls?.required ?? false,
      deflate: config.deflate,
      maxDeflateLevel: config.maxDeflateLevel,
      snappy: config.snappy,
    },
    {
      engine,
      logger: logger.child({ subsystem: 'tcp' }),
      upgrades: {
        tls: serverTls ? tlsUpgrade(serverTls) : undefined,
        snappy: (t) => compressStreams(t, 'snappy'),
        deflate: (t, level) => compressStreams(t, 'deflate', level),
      },
      auth: authClient.enabled ? authenticator(authClient) : null,
    },
  );

  return {
    engine,
    async start() {
      const h = parseHostPort(config.httpAddress);
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(h.port, h.host, () => {
          httpServer.off('error', reject);
          resolve();
        });
      });
      const addr = httpServer.address() as AddressInfo;
      httpPort = addr.port;
      engine.start();
      tcpPort = (await tcpServer.start()).port;
      const tcp = parseHostPort(config.tcpAddress);
      registration.start();
      return { http: `${h.host}:${httpPort}`, tcp: `${tcp.host}:${tcpPort}` };
    },
    async close() {
      await tcpServer.close();
      await authClient.close();
      await registration.close();
      await new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      });
      engine.close();
      try {
        saveIdempotencyKeys(dataPath, idempotency.saved());
      } catch (err) {
        logger.error('could not save idempotency keys', { error: err instanceof Error ? err.message : String(err) });
      }
    },
  };
}
