// Time as the engine sees it: a monotonic clock for timeouts and a wall clock for timestamps
// and for due times that must survive a restart. Tests pass a FakeClock instead of sleeping.

export interface Clock {
  /** Monotonic milliseconds; never jumps when the wall clock is stepped. */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch. */
  wallNow(): number;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
};

export class FakeClock implements Clock {
  constructor(private mono = 1_000, private wall = 1_700_000_000_000) {}
  now(): number {
    return this.mono;
  }
  wallNow(): number {
    return this.wall;
  }
  advance(ms: number): void {
    this.mono += ms;
    this.wall += ms;
  }
  /** Steps only the wall clock, as NTP or an operator might. */
  stepWall(ms: number): void {
    this.wall += ms;
  }
}
