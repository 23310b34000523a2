// The slice of opossum's API the gateway uses (the package ships no type declarations).

declare module 'opossum' {
  import { EventEmitter } from 'node:events';

  namespace CircuitBreaker {
    interface Options {
      timeout?: number | false;
      resetTimeout?: number;
      errorThresholdPercentage?: number;
      volumeThreshold?: number;
      rollingCountTimeout?: number;
      rollingCountBuckets?: number;
      errorFilter?: (err: unknown, ...args: unknown[]) => boolean;
      name?: string;
    }
  }

  class CircuitBreaker<A extends unknown[] = unknown[], R = unknown> extends EventEmitter {
    constructor(action: (...args: A) => Promise<R>, options?: CircuitBreaker.Options);
    fire(...args: A): Promise<R>;
    readonly opened: boolean;
    readonly halfOpen: boolean;
    readonly closed: boolean;
    open(): void;
    close(): void;
    shutdown(): void;
  }

  export = CircuitBreaker;
}
