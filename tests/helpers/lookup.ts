// nsqlookupd v1.3's HTTP answer shapes as compiled validators (shared by every test that reads a lookup),
// and a real `sluice lookup` process on ephemeral or given ports.

import Ajv from 'ajv';
import { Running, startProgram } from './process';

// --- the response shapes nsqlookupd v1.3 writes (no extra fields, arrays never null) ---
const ajv = new Ajv({ allErrors: true });
const str = { type: 'string' };
const int = { type: 'integer' };
const strings = { type: 'array', items: str };
const peerProps = { remote_address: str, hostname: str, broadcast_address: str, tcp_port: int, http_port: int, version: str };
const strict = (properties: Record<string, unknown>) => ({ type: 'object', properties, required: Object.keys(properties), additionalProperties: false });
export const shapes = {
  info: ajv.compile(strict({ version: str })),
  lookup: ajv.compile(strict({ channels: strings, producers: { type: 'array', items: strict(peerProps) } })),
  topics: ajv.compile(strict({ topics: strings })),
  channels: ajv.compile(strict({ channels: strings })),
  nodes: ajv.compile(
    strict({ producers: { type: 'array', items: strict({ ...peerProps, tombstones: { type: 'array', items: { type: 'boolean' } }, topics: strings }) } }),
  ),
  error: ajv.compile(strict({ message: str })),
  identify: ajv.compile(strict({ broadcast_address: str, hostname: str, http_port: int, tcp_port: int, version: str })),
};

export function expectShape(name: keyof typeof shapes, value: unknown): void {
  const validate = shapes[name];
  if (!validate(value)) throw new Error(`${name} shape: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(value)}`);
}

export type LookupBody = { channels: string[]; producers: Array<Record<string, unknown>> };
export type NodesBody = { producers: Array<{ remote_address: string; topics: string[]; tombstones: boolean[] }> };

export interface LookupProcess extends Running {
  tcpPort: number;
  httpPort: number;
  /** "127.0.0.1:port" of the TCP side, as shards are told with --lookupd-tcp-address. */
  tcpAddress: string;
  /** http://127.0.0.1:port */
  base: string;
}

/**
 * Starts `sluice lookup` on 127.0.0.1, on the given ports or ephemeral ones. To restart one on the same
 * ports, start it on ephemeral ones first and pass the ports it got.
 */
export async function startLookup(args: string[] = [], ports: { tcp: number; http: number } = { tcp: 0, http: 0 }): Promise<LookupProcess> {
  const p = await startProgram(['lookup', '--tcp-address', `127.0.0.1:${ports.tcp}`, '--http-address', `127.0.0.1:${ports.http}`, ...args]);
  const tcpPort = Number(p.addresses.tcp.split(':')[1]);
  const httpPort = Number(p.addresses.http.split(':')[1]);
  return Object.assign(p, { tcpPort, httpPort, tcpAddress: `127.0.0.1:${tcpPort}`, base: `http://127.0.0.1:${httpPort}` });
}
