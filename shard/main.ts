// `sluice shard`: flags → a running shard, logging where it listens.

import { defineProgram } from '../runtime/program';
import { shardFlags } from './flags';
import { createShard } from './shard';

export const program = defineProgram({
  summary: 'Runs a shard: an nsqd-compatible node (NSQ TCP protocol V2 and HTTP API) with the Sluice lease API.',
  flags: shardFlags,
  async run(config, logger) {
    const shard = createShard(config, logger);
    const addresses = await shard.start();
    logger.info('listening', addresses);
    return shard;
  },
});
