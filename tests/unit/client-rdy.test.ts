// The consumer's pure decisions: how max_in_flight becomes RDY per connection (even shares,
// server caps, rotation when slots are fewer than connections) and go-nsq-style backoff.

import { BackoffState, exponentialDelay } from '../../client/backoff';
import { planRdy, type RdyConn } from '../../client/rdy';

const conn = (over: Partial<RdyConn> = {}): RdyConn => ({ rdy: 0, inFlight: 0, maxRdy: 2500, lastMessageAt: -Infinity, lastRdyAt: -Infinity, ...over });
const opts = (maxInFlight: number, now = 100_000) => ({ maxInFlight, now, idleMs: 10_000 });

describe('planRdy', () => {
  it('gives nothing to nobody', () => {
    expect(planRdy([], opts(10))).toEqual([]);
  });

  it('shares the slots evenly, the first connections taking the remainder', () => {
    expect(planRdy([conn(), conn(), conn()], opts(200))).toEqual([67, 67, 66]);
    expect(planRdy([conn(), conn()], opts(2))).toEqual([1, 1]);
    expect(planRdy([conn()], opts(1))).toEqual([1]);
  });

  it('never exceeds what a server allows', () => {
    expect(planRdy([conn({ maxRdy: 50 }), conn()], opts(1000))).toEqual([50, 500]);
  });

  it('max_in_flight 0 pauses everything', () => {
    expect(planRdy([conn({ rdy: 5 }), conn({ rdy: 5 })], opts(0))).toEqual([0, 0]);
  });

  describe('with fewer slots than connections', () => {
    it('starts with the connections that never had a turn, in order', () => {
      expect(planRdy([conn(), conn(), conn()], opts(2))).toEqual([1, 1, 0]);
    });

    it('a busy holder keeps its slot', () => {
      const now = 100_000;
      const plan = planRdy([conn({ rdy: 1, lastRdyAt: now - 60_000, lastMessageAt: now - 10 }), conn()], opts(1, now));
      expect(plan).toEqual([1, 0]);
      // busy also means messages in flight, however old the last one is
      expect(planRdy([conn({ rdy: 1, inFlight: 1, lastRdyAt: 0, lastMessageAt: 0 }), conn()], opts(1, now))).toEqual([1, 0]);
      // and a slot just given counts as busy for idleMs, even before its first message
      expect(planRdy([conn({ rdy: 1, lastRdyAt: now - 5 }), conn()], opts(1, now))).toEqual([1, 0]);
    });

    it('an idle holder hands its slot to the connection that has waited longest', () => {
      const now = 100_000;
      const idle = conn({ rdy: 1, lastRdyAt: now - 20_000, lastMessageAt: now - 15_000 });
      const waitedLong = conn({ lastRdyAt: now - 90_000 });
      const waitedLess = conn({ lastRdyAt: now - 30_000 });
      expect(planRdy([idle, waitedLess, waitedLong], opts(1, now))).toEqual([0, 0, 1]);
    });

    it('so the slot goes round every connection in turn', () => {
      let now = 0;
      let conns = [conn(), conn(), conn()];
      const holders: number[] = [];
      for (let round = 0; round < 6; round++) {
        const plan = planRdy(conns, { maxInFlight: 1, now, idleMs: 10 });
        holders.push(plan.indexOf(1));
        conns = conns.map((c, i) => ({ ...c, rdy: plan[i], lastRdyAt: plan[i] > 0 && c.rdy === 0 ? now : c.lastRdyAt }));
        now += 20; // everyone idle by the next plan
      }
      expect(holders).toEqual([0, 1, 2, 0, 1, 2]);
    });

    it('a holder hands its slot on after maxHoldMs even when busy, so no connection starves', () => {
      const now = 100_000;
      const busyLong = conn({ rdy: 1, inFlight: 1, lastMessageAt: now, lastRdyAt: now - 10_000 });
      expect(planRdy([busyLong, conn({ lastRdyAt: now - 20_000 })], { ...opts(1, now), maxHoldMs: 10_000 })).toEqual([0, 1]);
      expect(planRdy([busyLong, conn({ lastRdyAt: now - 20_000 })], { ...opts(1, now), maxHoldMs: 10_001 })).toEqual([1, 0]);
    });

    it('when busy holders outnumber the slots (max_in_flight lowered), the most recently active keep theirs', () => {
      const now = 100_000;
      const plan = planRdy([conn({ rdy: 3, lastMessageAt: now - 100 }), conn({ rdy: 3, lastMessageAt: now - 5 }), conn()], opts(1, now));
      expect(plan).toEqual([0, 1, 0]);
    });
  });
});

describe('exponentialDelay', () => {
  it('doubles from the base up to the cap', () => {
    expect([1, 2, 3, 4, 10].map((a) => exponentialDelay(a, 100, 1000))).toEqual([100, 200, 400, 800, 1000]);
    expect(exponentialDelay(0, 100, 1000)).toBe(100);
    expect(exponentialDelay(5000, 100, 1000)).toBe(1000);
  });

  it('jitter only shortens', () => {
    expect(exponentialDelay(3, 100, 1000, 0.5, () => 0.999)).toBeGreaterThanOrEqual(200);
    expect(exponentialDelay(3, 100, 1000, 0.5, () => 0)).toBe(400);
  });
});

describe('BackoffState (go-nsq semantics)', () => {
  it('a failure pauses, the pause grows with each failure, successes bring it back down', () => {
    const b = new BackoffState(100, 10_000);
    let now = 0;
    expect(b.signal(false, now)).toEqual({ kind: 'pause', ms: 100, level: 1 });
    expect(b.inPause(now + 50)).toBe(true);
    now += 100;
    expect(b.inPause(now)).toBe(false);
    expect(b.active()).toBe(true); // out of the pause, testing with one message
    expect(b.signal(false, now)).toEqual({ kind: 'pause', ms: 200, level: 2 });
    now += 200;
    expect(b.signal(true, now)).toEqual({ kind: 'pause', ms: 100, level: 1 });
    now += 100;
    expect(b.signal(true, now)).toEqual({ kind: 'resume' });
    expect(b.active()).toBe(false);
    expect(b.signal(true, now)).toEqual({ kind: 'none' });
  });

  it('ignores signals during a pause (messages already in flight do not pile on)', () => {
    const b = new BackoffState(100, 10_000);
    b.signal(false, 0);
    expect(b.signal(false, 10)).toEqual({ kind: 'none' });
    expect(b.signal(true, 20)).toEqual({ kind: 'none' });
    expect(b.level).toBe(1);
  });

  it('stops raising the level once the next pause would pass the maximum', () => {
    const b = new BackoffState(100, 400);
    let now = 0;
    const levels: number[] = [];
    for (let i = 0; i < 6; i++) {
      const a = b.signal(false, now);
      if (a.kind === 'pause') {
        levels.push(a.level);
        now += a.ms;
      }
    }
    expect(levels).toEqual([1, 2, 3, 3, 3, 3]);
  });

  it('a multiplier of 0 turns it off', () => {
    const b = new BackoffState(0, 1000);
    expect(b.signal(false, 0)).toEqual({ kind: 'none' });
    expect(b.active()).toBe(false);
  });
});
