// The shard's flags: nsqd's names and defaults, each also read from SLUICE_<NAME>.

import os from 'node:os';
import { ConfigOf, flag } from '../runtime/config';
import { httpTimeoutFlags } from '../runtime/http-server';

const MiB = 1024 * 1024;

export const shardFlags = {
  tcpAddress: flag.string('0.0.0.0:4150', 'address for NSQ TCP protocol V2 clients'),
  httpAddress: flag.string('0.0.0.0:4151', 'address for the HTTP API'),
  broadcastAddress: flag.string(os.hostname(), 'address this shard is reached at, as told to lookups'),
  dataPath: flag.string('', 'directory for disk queues and metadata (default: the current directory)'),
  memQueueSize: flag.int(10000, 'messages kept in memory per topic and per channel before going to disk', 0),
  maxBytesPerFile: flag.int(100 * MiB, 'bytes per disk queue segment file before rolling', 1024),
  syncEvery: flag.int(2500, 'fsync a disk queue after this many messages (1 = before every publish is acknowledged)', 1),
  syncTimeout: flag.duration(2000, 'fsync a disk queue at least this often while it has unsynced writes'),
  msgTimeout: flag.duration(60_000, 'default time a delivered message may stay in flight'),
  maxMsgTimeout: flag.duration(15 * 60_000, 'longest in-flight time a client may ask for (touches included)'),
  maxReqTimeout: flag.duration(60 * 60_000, 'longest requeue delay or deferred publish'),
  maxMsgSize: flag.int(MiB, 'largest message body in bytes', 1),
  maxBodySize: flag.int(5 * MiB, 'largest request body (MPUB, /mpub) in bytes', 1),
  maxRdyCount: flag.int(2500, 'largest RDY a client may send', 1),
  maxChannelConsumers: flag.int(0, 'most consumers per channel (0 = unlimited)', 0),
  maxHeartbeatInterval: flag.duration(60_000, 'largest heartbeat_interval a TCP client may IDENTIFY with'),
  maxOutputBufferSize: flag.int(64 * 1024, 'largest output_buffer_size a TCP client may IDENTIFY with', 64),
  maxOutputBufferTimeout: flag.duration(30_000, 'largest output_buffer_timeout a TCP client may IDENTIFY with'),
  minOutputBufferTimeout: flag.duration(25, 'smallest output_buffer_timeout a TCP client may IDENTIFY with'),
  outputBufferTimeout: flag.duration(250, 'default time a TCP client\'s buffered messages wait before being written'),
  deflate: flag.bool(true, 'let TCP clients negotiate deflate compression'),
  maxDeflateLevel: flag.int(6, 'largest deflate level a TCP client may negotiate (1-9)', 1, 9),
  snappy: flag.bool(true, 'let TCP clients negotiate snappy compression'),
  tlsCert: flag.string('', 'path to the certificate file; with --tls-key, TCP clients may negotiate TLS (tls_v1)'),
  tlsKey: flag.string('', 'path to the private key file'),
  tlsRootCaFile: flag.string('', 'path to the certificate authority file that client certificates are checked against'),
  tlsClientAuthPolicy: flag.string('', "client certificate policy: '' (none), 'require', or 'require-verify' (implies --tls-required)"),
  tlsMinVersion: flag.string('', 'minimum TLS version: tls1.0, tls1.1, tls1.2 or tls1.3 (default: Node\'s, TLS 1.2)'),
  tlsRequired: flag.bool(false, 'refuse every TCP command but IDENTIFY until the client has upgraded to TLS'),
  authHttpAddress: flag.list([], 'auth server host:port or URL to check AUTH secrets and permissions with (repeatable)'),
  authHttpRequestMethod: flag.string('get', 'HTTP method of auth server requests: get or post'),
  nodeId: flag.int(-1, 'worker id in message ids, 0..1023 (default: derived from the hostname and data path, so shards sharing a host differ)', -1, 1023),
  lookupdTcpAddress: flag.list([], 'lookup TCP address to register with (repeatable)'),
  lookupPingInterval: flag.duration(15_000, 'how often to PING each lookup (nsqd: 15s); a lookup hides a node silent for its --inactive-producer-timeout'),
  leaseGrace: flag.duration(30_000, 'how long an #ephemeral channel used only through the lease API outlives its last pull'),
  idempotencyWindow: flag.duration(10 * 60_000, 'how long a publish idempotency key is remembered (0 = off)'),
  idempotencyKeys: flag.int(100_000, 'most idempotency keys remembered; the least recently used go first', 0),
  ...httpTimeoutFlags,
  logLevel: flag.string('info', 'log level: error, warn, info or debug'),
};

export type ShardConfig = ConfigOf<typeof shardFlags>;

/** nsqd derives its default worker id from the hostname; so do we (a stable 0..1023). */
export function defaultNodeId(hostname = os.hostname()): number {
  let h = 0;
  for (let i = 0; i < hostname.length; i++) h = (h * 31 + hostname.charCodeAt(i)) >>> 0;
  return h % 1024;
}
