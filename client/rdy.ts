// How a consumer spreads its max_in_flight over its connections as RDY counts (pure: the caller
// sends the RDY commands). nsqd treats RDY as a cap on a connection's in-flight messages, so a
// count once sent stays valid: it only needs sending again when the plan changes.

export interface RdyConn {
  /** RDY last sent on this connection. */
  readonly rdy: number;
  readonly inFlight: number;
  /** The server's max_rdy_count (from IDENTIFY). */
  readonly maxRdy: number;
  /** When its last message arrived (ms, any monotonic clock); -Infinity if never. */
  readonly lastMessageAt: number;
  /** When it was last given RDY after having none; -Infinity if never. */
  readonly lastRdyAt: number;
}

export interface RdyPlanOptions {
  readonly maxInFlight: number;
  readonly now: number;
  /** With fewer slots than connections, a connection idle this long hands its slot on… */
  readonly idleMs: number;
  /** …and so does one that has held it this long, busy or not, so that no connection starves (default: no limit). */
  readonly maxHoldMs?: number;
}

/**
 * The RDY each connection should have, in the order given. With at least one slot per
 * connection, the slots are shared out evenly (the first connections take the remainder), each
 * capped at the server's maximum. With fewer slots than connections (max_in_flight 1 over two
 * shards, or a backoff letting one message through), the slots rotate: a connection keeps its
 * slot while busy (for at most maxHoldMs), and then hands it to the connection that has waited
 * longest.
 */
export function planRdy(conns: readonly RdyConn[], o: RdyPlanOptions): number[] {
  const n = conns.length;
  const slots = Math.max(0, Math.floor(o.maxInFlight));
  if (n === 0) return [];
  if (slots >= n) {
    const per = Math.floor(slots / n);
    const extra = slots % n;
    return conns.map((c, i) => Math.min(c.maxRdy, per + (i < extra ? 1 : 0)));
  }
  const plan = new Array<number>(n).fill(0);
  const held = (c: RdyConn): boolean => o.maxHoldMs === undefined || o.now - c.lastRdyAt < o.maxHoldMs;
  const busy = (c: RdyConn): boolean => held(c) && (c.inFlight > 0 || o.now - Math.max(c.lastMessageAt, c.lastRdyAt) < o.idleMs);
  // Holders that are busy keep their slot (most recently active first if they outnumber the slots).
  const keep = conns
    .map((c, i) => i)
    .filter((i) => conns[i].rdy > 0 && busy(conns[i]))
    .sort((a, b) => recent(conns[b]) - recent(conns[a]))
    .slice(0, slots);
  for (const i of keep) plan[i] = 1;
  // The rest go to whoever has waited longest for a turn.
  const waiting = conns
    .map((c, i) => i)
    .filter((i) => plan[i] === 0)
    .sort((a, b) => conns[a].lastRdyAt - conns[b].lastRdyAt || a - b);
  for (let k = 0; k < slots - keep.length && k < waiting.length; k++) plan[waiting[k]] = 1;
  return plan.map((r, i) => Math.min(r, conns[i].maxRdy));
}

function recent(c: RdyConn): number {
  return Math.max(c.lastMessageAt, c.lastRdyAt);
}
