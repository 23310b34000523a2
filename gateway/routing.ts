// Where a message goes, as pure functions of names: rendezvous (highest random weight) hashing,
// so every gateway that knows the same shards makes the same choice with no coordination, and a
// shard that leaves moves only the keys it held.

/** cyrb53: a fast, well-mixed 53-bit string hash (deterministic across processes and versions). */
export function hash53(text: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** `nodes` ordered by their rendezvous score for `key`, best first (ties broken by name). */
export function rendezvous(key: string, nodes: readonly string[]): string[] {
  const scored = nodes.map((n) => ({ n, s: hash53(key + '\u0000' + n) }));
  scored.sort((a, b) => b.s - a.s || (a.n < b.n ? -1 : a.n > b.n ? 1 : 0));
  return scored.map((x) => x.n);
}

/** The shards a topic that exists nowhere yet is placed on: the best `count` for the topic's name. */
export function placement(topic: string, nodes: readonly string[], count: number): string[] {
  return rendezvous('topic:' + topic, nodes).slice(0, Math.max(1, count));
}

/** A topic's home: the shards it exists on together with its placement, sorted. */
export function homeOf(topic: string, nodes: readonly string[], existing: readonly string[], placementCount: number): string[] {
  const home = new Set(existing);
  for (const n of placement(topic, nodes, placementCount)) home.add(n);
  return [...home].sort();
}

export interface RouteInput {
  topic: string;
  /** Every shard known (from the lookups, or static). */
  nodes: readonly string[];
  /** The topic's home (homeOf). */
  home: readonly string[];
  /** Routing key (or idempotency key): the same key always ranks the same shard first. */
  key?: string;
  /** For spreading messages without a key over the topic's home. */
  turn: number;
  /** Shards not to use now (open breaker); they go to the end rather than out. */
  unavailable?: (node: string) => boolean;
}

/**
 * The shards to try, in order: the topic's home first — in turn without a key, ranked by the key
 * with one — then every other shard as a fallback. The home is where the topic exists plus where
 * rendezvous hashing places it, so a new topic lands on the same shards from every gateway, and
 * a key keeps its shard while that shard is up (only the keys of a shard that is down move).
 */
export function route(r: RouteInput): string[] {
  let first: string[];
  if (r.key !== undefined) first = rendezvous('key:' + r.key, r.home);
  else {
    const start = r.home.length > 0 ? r.turn % r.home.length : 0;
    first = r.home.slice(start).concat(r.home.slice(0, start));
  }
  let order = first;
  if (r.nodes.length > first.length) {
    const seen = new Set(first);
    order = first.concat(rendezvous(r.key !== undefined ? 'key:' + r.key : 'topic:' + r.topic, r.nodes.filter((n) => !seen.has(n))));
  }
  if (!r.unavailable) return order;
  const up: string[] = [];
  const down: string[] = [];
  for (const n of order) (r.unavailable(n) ? down : up).push(n);
  return up.concat(down);
}
