// What every `sluice` subcommand provides, so bin/sluice.ts can parse flags, print help,
// start the program and shut it down on a signal in one uniform way.

import type { ConfigOf, FlagSpec } from './config';
import type { Logger } from './logger';

export interface Service {
  /** Stops accepting work, persists what it holds, closes sockets; resolves when done. */
  close(): Promise<void>;
}

export interface Program<S extends FlagSpec = FlagSpec> {
  /** One paragraph for `--help`. */
  summary: string;
  flags: S;
  /** Starts the program; the promise resolves once it is listening. */
  run(config: ConfigOf<S>, logger: Logger, args: string[]): Promise<Service>;
}

export function defineProgram<S extends FlagSpec>(p: Program<S>): Program<S> {
  return p;
}
