// The NSQ TCP client: Producer (PUB/MPUB/DPUB to one node), Consumer (SUB on every node of a
// topic, found through lookups or given), and discovery. No dependency on any NSQ library.
// The same over HTTP through a gateway: GatewayProducer and GatewayConsumer.

export { Producer, type ProducerOptions } from './producer';
export { Consumer, type ConsumerOptions, type ConsumerStats } from './consumer';
export { Message } from './message';
export { ClientError, GatewayCallError, type ClientErrorCode } from './errors';
export { GatewayConsumer, type GatewayConsumerOptions } from './gateway-consumer';
export { GatewayProducer, type GatewayProducerOptions } from './gateway-producer';
export type { MessageSource, Publisher } from './source';
export { lookupNodes, lookupTopic, getJson, type Discovery, type NodeAddress } from './lookup';
export type { ConnectionOptions, ServerSettings } from './connection';
