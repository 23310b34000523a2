// End-to-end latency (publish → finish) counted into fixed buckets by each channel itself: a
// couple of comparisons per FIN instead of a labelled metric update, read out at scrape time.

/** Upper bounds in seconds (Prometheus `le`), then +Inf. */
export const LATENCY_BUCKETS_S: readonly number[] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600];

export class LatencyHistogram {
  /** counts[i]: observations in (bounds[i-1], bounds[i]]; the last one is above every bound. */
  readonly counts = new Float64Array(LATENCY_BUCKETS_S.length + 1);
  sum = 0;
  count = 0;

  observe(ms: number): void {
    const s = ms > 0 ? ms / 1000 : 0;
    let i = 0;
    while (i < LATENCY_BUCKETS_S.length && s > LATENCY_BUCKETS_S[i]) i++;
    this.counts[i]++;
    this.sum += s;
    this.count++;
  }

  /** Cumulative counts per bound, as Prometheus histograms report them (the last is +Inf). */
  cumulative(): number[] {
    const out: number[] = [];
    let acc = 0;
    for (const c of this.counts) out.push((acc += c));
    return out;
  }
}
