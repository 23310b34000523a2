// Sluice's own version (the nsqd protocol version we speak is ENGINE_VERSION in the shard).

export const SLUICE_VERSION = '0.1.0';
