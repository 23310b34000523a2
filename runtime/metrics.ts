// Metric helpers shared by the programs (prom-client).

import { Counter, Registry } from 'prom-client';

/** A counter kept equal to a running total that only grows, brought up to date when scraped. */
export function totalCounter(registry: Registry, name: string, help: string, read: () => number): void {
  let last = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      if (now > last) this.inc(now - last);
      last = now;
    },
  });
}
