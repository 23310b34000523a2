// `sluice lookup`: flags named and defaulted like nsqlookupd's → a registry plus its TCP and HTTP servers.
// Nodes register over TCP ("  V1"); clients discover them over HTTP (/lookup, /nodes, …).

import os from 'node:os';
import { flag, parseHostPort } from '../runtime/config';
import { defineProgram } from '../runtime/program';
import { httpTimeoutFlags } from '../runtime/http-server';
import { createHttpServer } from './http';
import { createLookupMetrics } from './metrics';
import { Registry } from './registry';
import { createTcpServer, formatAddress } from './tcp';

/**
 * What /info and the IDENTIFY reply report: the nsqlookupd version we are wire-compatible with, as the
 * shard reports nsqd's (ENGINE_VERSION), so tools that compare versions treat us like the real thing.
 */
export const LOOKUP_VERSION = '1.3.0';

const flags = {
  tcpAddress: flag.string('0.0.0.0:4160', '<addr>:<port> to listen on for TCP clients (nodes registering)'),
  httpAddress: flag.string('0.0.0.0:4161', '<addr>:<port> to listen on for HTTP clients'),
  broadcastAddress: flag.string(os.hostname(), 'address of this lookup node, told to nodes in the IDENTIFY reply'),
  inactiveProducerTimeout: flag.duration(300_000, 'duration of time a producer will remain in the active list since its last ping'),
  tombstoneLifetime: flag.duration(45_000, 'duration of time a producer will remain tombstoned if registration remains'),
  ...httpTimeoutFlags,
  logLevel: flag.string('info', 'log verbosity: debug, info, warn or error'),
};

export const program = defineProgram({
  summary: 'Runs a lookup: nsqlookupd-compatible discovery. Nodes register topics and channels over TCP; clients find them over HTTP.',
  flags,
  async run(config, logger) {
    const tcpAddr = parseHostPort(config.tcpAddress);
    const httpAddr = parseHostPort(config.httpAddress);
    const registry = new Registry({
      now: () => performance.now(),
      inactiveProducerTimeoutMs: config.inactiveProducerTimeout,
      tombstoneLifetimeMs: config.tombstoneLifetime,
    });
    const ports = { tcp: 0, http: 0 };
    const tcp = createTcpServer({
      registry,
      logger: logger.child({ server: 'tcp' }),
      self: {
        broadcastAddress: config.broadcastAddress,
        hostname: os.hostname(),
        version: LOOKUP_VERSION,
        tcpPort: () => ports.tcp,
        httpPort: () => ports.http,
      },
    });
    const http = createHttpServer({ registry, version: LOOKUP_VERSION, logger: logger.child({ server: 'http' }), metrics: createLookupMetrics(registry), timeouts: { headersTimeoutMs: config.headerTimeout, requestTimeoutMs: config.requestTimeout } });
    const boundTcp = await tcp.start(tcpAddr.host, tcpAddr.port);
    let boundHttp;
    try {
      boundHttp = await http.start(httpAddr.host, httpAddr.port);
    } catch (err) {
      await tcp.close();
      throw err;
    }
    ports.tcp = boundTcp.port;
    ports.http = boundHttp.port;
    logger.info('listening', { tcp: formatAddress(boundTcp.host, boundTcp.port), http: formatAddress(boundHttp.host, boundHttp.port) });
    return {
      async close() {
        await Promise.all([tcp.close(), http.close()]);
      },
    };
  },
});
