// The NSQ TCP client: Producer (PUB/MPUB/DPUB to one node), Consumer (SUB on every node of a
// topic, found through lookups or given), and discovery. No dependency on any NSQ library.

export { Producer, type ProducerOptions } from './producer';
export { Consumer, type ConsumerOptions, type ConsumerStats } from './consumer';
export { Message } from './message';
export { ClientError, type ClientErrorCode } from './errors';
export { lookupNodes, lookupTopic, getJson, type Discovery, type NodeAddress } from './lookup';
export type { ConnectionOptions, ServerSettings } from './connection';
