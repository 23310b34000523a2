// Pure helpers for the publishing side of the tools: splitting a byte stream into lines and a
// token bucket limiting messages per second. No I/O, time passed in.

/**
 * Splits pushed chunks into lines on '\n' (a trailing '\r' is dropped, empty lines are skipped,
 * as nsqd's /mpub does). A line longer than `maxLine` bytes is not buffered: it is reported once
 * as `tooLong` and skipped up to its end.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private partLen = 0;
  private skipping = false;
  tooLong = 0;

  constructor(private readonly maxLine: number) {}

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    for (;;) {
      const nl = chunk.indexOf(10, pos);
      if (nl < 0) {
        this.carry(chunk.subarray(pos));
        return out;
      }
      this.carry(chunk.subarray(pos, nl));
      this.emit(out);
      pos = nl + 1;
    }
  }

  /** The last line, if the input did not end with a newline. */
  end(): Buffer[] {
    const out: Buffer[] = [];
    this.emit(out);
    return out;
  }

  private carry(bytes: Buffer): void {
    if (this.skipping || bytes.length === 0) return;
    if (this.partLen + bytes.length > this.maxLine + 1) {
      // +1: a '\r' before the newline does not count against the limit
      this.skipping = true;
      this.tooLong++;
      this.parts = [];
      this.partLen = 0;
      return;
    }
    this.parts.push(bytes);
    this.partLen += bytes.length;
  }

  private emit(out: Buffer[]): void {
    if (!this.skipping && this.partLen > 0) {
      let line = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.partLen);
      if (line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
      if (line.length > this.maxLine) this.tooLong++;
      else if (line.length > 0) out.push(line);
    }
    this.skipping = false;
    this.parts = [];
    this.partLen = 0;
  }
}

/**
 * A token bucket: `ratePerSec` tokens a second, holding at most a tenth of a second's worth (at
 * least one), so a stall is not followed by a burst. Rate 0 means no limit.
 */
export class RateLimiter {
  private tokens: number;
  private at: number;
  private readonly burst: number;

  constructor(private readonly ratePerSec: number, now: number) {
    this.burst = Math.max(1, Math.ceil(ratePerSec / 10));
    this.tokens = this.burst;
    this.at = now;
  }

  /** How many of `want` may go now; when none, `waitMs` until one may. */
  take(want: number, now: number): { n: number; waitMs: number } {
    if (this.ratePerSec <= 0) return { n: want, waitMs: 0 };
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.ratePerSec) / 1000);
    this.at = now;
    const n = Math.min(want, Math.floor(this.tokens));
    this.tokens -= n;
    return { n, waitMs: n > 0 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.ratePerSec) };
  }
}
