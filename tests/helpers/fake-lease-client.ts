// A shard's lease API in memory, for unit tests of the gateway's consuming side: queues per
// channel, leases with tokens, a pull-many long-poll that answers when something is published
// (or aborts, or times out), and settle results like the real shard's. Records every call.

import type { ChannelConfig, LeaseClient, LeasedMessage, PullSpec, SettleItem, SettleOp, SettleOutcome } from '../../gateway/lease-client';

interface Held {
  msg: LeasedMessage;
  /** Date.now() when the lease ends. */
  until: number;
  topic: string;
  channel: string;
}

interface PendingPoll {
  pulls: readonly PullSpec[];
  resolve(v: LeasedMessage[][]): void;
  reject(e: unknown): void;
  timer: NodeJS.Timeout;
  onAnswer?: () => void;
}

export class FakeShard implements LeaseClient {
  readonly queues = new Map<string, LeasedMessage[]>();
  readonly inFlight = new Map<string, Held>();
  readonly polls: { pulls: PullSpec[]; waitMs: number; aborted: boolean }[] = [];
  readonly settles: { op: SettleOp; topic: string; channel: string; items: SettleItem[] }[] = [];
  private pending: PendingPoll[] = [];
  private seq = 0;
  private tokenSeq = 0;
  /** Makes every call fail (a shard that is down). */
  down = false;

  constructor(readonly address: string) {}

  private q(topic: string, channel: string): LeasedMessage[] {
    const k = topic + '/' + channel;
    let q = this.queues.get(k);
    if (!q) this.queues.set(k, (q = []));
    return q;
  }

  /** Puts a message on a channel; answers a waiting poll that asks for it. */
  publish(topic: string, channel: string, body: string | Buffer): string {
    const id = (this.address.length.toString(16) + (++this.seq).toString(16)).padStart(16, '0').slice(-16);
    this.q(topic, channel).push({ id, token: '', attempts: 0, timestamp: Date.now() * 1e6, leaseMs: 0, body: Buffer.from(body) });
    this.answerPending();
    return id;
  }

  depth(topic: string, channel: string): number {
    return this.q(topic, channel).length;
  }

  private take(pulls: readonly PullSpec[]): LeasedMessage[][] {
    return pulls.map((p) => {
      const q = this.q(p.topic, p.channel);
      const got = q.splice(0, p.max);
      return got.map((m) => {
        const leased = { ...m, attempts: m.attempts + 1, token: 't' + ++this.tokenSeq, leaseMs: p.leaseMs };
        this.inFlight.set(m.id, { msg: leased, topic: p.topic, channel: p.channel, until: Date.now() + p.leaseMs });
        return leased;
      });
    });
  }

  private answerPending(): void {
    for (const p of [...this.pending]) {
      if (!p.pulls.some((s) => this.q(s.topic, s.channel).length > 0)) continue;
      this.pending.splice(this.pending.indexOf(p), 1);
      clearTimeout(p.timer);
      p.onAnswer?.();
      p.resolve(this.take(p.pulls));
    }
  }

  pullMany(pulls: readonly PullSpec[], waitMs: number, signal: AbortSignal, onAnswer?: () => void): Promise<LeasedMessage[][]> {
    const rec = { pulls: pulls.map((p) => ({ ...p })), waitMs, aborted: false };
    this.polls.push(rec);
    if (this.down) return Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    if (pulls.some((s) => this.q(s.topic, s.channel).length > 0)) {
      onAnswer?.();
      return Promise.resolve(this.take(pulls));
    }
    return new Promise((resolve, reject) => {
      const p: PendingPoll = {
        pulls,
        resolve,
        reject,
        onAnswer,
        timer: setTimeout(() => {
          this.pending = this.pending.filter((x) => x !== p);
          resolve(pulls.map(() => []));
        }, waitMs),
      };
      this.pending.push(p);
      signal.addEventListener('abort', () => {
        if (!this.pending.includes(p)) return;
        rec.aborted = true;
        this.pending = this.pending.filter((x) => x !== p);
        clearTimeout(p.timer);
        reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
      });
    });
  }

  async settle(op: SettleOp, topic: string, channel: string, items: readonly SettleItem[]): Promise<SettleOutcome[]> {
    this.settles.push({ op, topic, channel, items: items.map((i) => ({ ...i })) });
    if (this.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    return items.map((it) => {
      const h = this.inFlight.get(it.id);
      if (!h || h.topic !== topic || h.channel !== channel) return { status: 'NOT_IN_FLIGHT' };
      if (h.msg.token !== it.token) return { status: 'STALE_LEASE' };
      if (op === 'status') return { status: 'OK', leaseMs: Math.max(0, h.until - Date.now()) };
      if (op === 'touch') {
        h.until = Date.now() + (it.leaseMs ?? h.msg.leaseMs);
        return { status: 'OK', leaseMs: it.leaseMs ?? h.msg.leaseMs };
      }
      this.inFlight.delete(it.id);
      if (op === 'requeue') {
        const back = { ...h.msg, token: '', attempts: it.undelivered ? h.msg.attempts - 1 : h.msg.attempts };
        const q = this.q(topic, channel);
        if ((it.delayMs ?? 0) > 0) setTimeout(() => (q.push(back), this.answerPending()), it.delayMs);
        else {
          q.unshift(back);
          setImmediate(() => this.answerPending());
        }
      }
      return { status: 'OK' };
    });
  }

  /** Settles a lease directly, as another gateway would. */
  finishElsewhere(id: string): void {
    this.inFlight.delete(id);
  }

  async channelConfig(_topic: string, _channel: string, set?: { maxAttempts: number; deadLetterTopic: string }): Promise<ChannelConfig> {
    return { max_attempts: set?.maxAttempts ?? 0, dead_letter_topic: set?.deadLetterTopic ?? '', dead_lettered_count: 0 };
  }

  readonly created: string[] = [];

  async createChannel(topic: string, channel: string): Promise<void> {
    this.created.push(topic + '/' + channel);
    this.q(topic, channel);
  }

  async close(): Promise<void> {
    for (const p of this.pending) {
      clearTimeout(p.timer);
      p.resolve(p.pulls.map(() => []));
    }
    this.pending = [];
  }
}
