// Backoff, pure: the exponential delay every retry uses (reconnects, requeue delays) and the
// consumer's go-nsq-style backoff state machine (failures slow the whole consumer down). No timers.

/** base · 2^(attempt−1), capped at max; attempt 1 is `base`. `jitter` ∈ [0,1) shortens it randomly by up to that fraction. */
export function exponentialDelay(attempt: number, baseMs: number, maxMs: number, jitter = 0, random: () => number = Math.random): number {
  const exp = Math.min(Math.max(attempt, 1) - 1, 52);
  const d = Math.min(maxMs, baseMs * 2 ** exp);
  return jitter > 0 ? Math.round(d * (1 - jitter * random())) : d;
}

export type BackoffAction =
  /** nothing changes */
  | { readonly kind: 'none' }
  /** the backoff is over: every connection back to its full RDY */
  | { readonly kind: 'resume' }
  /** RDY 0 everywhere for `ms`, then test the waters with RDY 1 on one connection */
  | { readonly kind: 'pause'; readonly ms: number; readonly level: number };

/**
 * go-nsq's consumer backoff: each failure (a requeue that asks for backoff) raises the level,
 * each success lowers it; while the level is above 0 the consumer pauses for a time growing with
 * the level and then lets one message through at a time. Signals that arrive during a pause are
 * ignored, so a burst of failures from messages already in flight does not jump to the maximum.
 * `multiplierMs` 0 turns it off.
 */
export class BackoffState {
  private lvl = 0;
  private pausedUntil = 0;

  constructor(private readonly multiplierMs: number, private readonly maxMs: number) {}

  get level(): number {
    return this.lvl;
  }

  get enabled(): boolean {
    return this.multiplierMs > 0;
  }

  /** In a pause: no RDY at all. */
  inPause(now: number): boolean {
    return now < this.pausedUntil;
  }

  /** Backing off (paused or letting one message through at a time). */
  active(): boolean {
    return this.lvl > 0;
  }

  signal(success: boolean, now: number): BackoffAction {
    if (!this.enabled || this.inPause(now)) return { kind: 'none' };
    let changed = false;
    if (success) {
      if (this.lvl > 0) {
        this.lvl--;
        changed = true;
      }
    } else if (exponentialDelay(this.lvl + 1, this.multiplierMs, Infinity) <= this.maxMs) {
      this.lvl++;
      changed = true;
    }
    if (this.lvl === 0) return changed ? { kind: 'resume' } : { kind: 'none' };
    const ms = exponentialDelay(this.lvl, this.multiplierMs, this.maxMs);
    this.pausedUntil = now + ms;
    return { kind: 'pause', ms, level: this.lvl };
  }
}
