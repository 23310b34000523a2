// What shards exist and which topics each holds, as the lookups tell it: every lookup's /nodes is
// polled, the answers are merged (a union: lookups never talk to each other), and each lookup's
// last good answer is kept, so while every lookup is down the gateway goes on with what it knew.

import { request } from 'undici';
import type { Logger } from '../runtime/logger';

export interface NodeInfo {
  /** "broadcast_address:http_port": how the gateway reaches the shard and names it to clients. */
  address: string;
  topics: Set<string>;
}

/** One lookup's answer, reduced to what routing needs. */
export type LookupAnswer = Map<string, Set<string>>;

/** Fetches a lookup's /nodes; replaceable in tests. */
export type FetchNodes = (lookup: string, signal: AbortSignal) => Promise<unknown>;

export interface TopologyOptions {
  lookups: readonly string[];
  /** Shards known without a lookup (`--shard-http-address`); they hold no topics until published to. */
  staticShards: readonly string[];
  pollIntervalMs: number;
  timeoutMs: number;
}

function baseUrl(address: string): string {
  return /^https?:\/\//.test(address) ? address.replace(/\/+$/, '') : `http://${address}`;
}

export const fetchNodes: FetchNodes = async (lookup, signal) => {
  const res = await request(baseUrl(lookup) + '/nodes', { method: 'GET', signal });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`lookup answered ${res.statusCode}`);
  return JSON.parse(text) as unknown;
};

/** Reads nsqlookupd's /nodes document; tombstoned topics are left out (the shard is leaving them). */
export function parseNodes(doc: unknown): LookupAnswer {
  const out: LookupAnswer = new Map();
  const producers = (doc as { producers?: unknown })?.producers;
  if (!Array.isArray(producers)) throw new Error('lookup /nodes: no producers array');
  for (const p of producers as Record<string, unknown>[]) {
    if (!p || typeof p.broadcast_address !== 'string' || typeof p.http_port !== 'number') continue;
    const host = p.broadcast_address.includes(':') ? `[${p.broadcast_address}]` : p.broadcast_address;
    const address = `${host}:${p.http_port}`;
    const topics = out.get(address) ?? new Set<string>();
    const names = Array.isArray(p.topics) ? p.topics : [];
    const tombs = Array.isArray(p.tombstones) ? p.tombstones : [];
    names.forEach((t, i) => {
      if (typeof t === 'string' && tombs[i] !== true) topics.add(t);
    });
    out.set(address, topics);
  }
  return out;
}

export class Topology {
  private readonly answers = new Map<string, LookupAnswer>();
  private readonly lookupOk = new Map<string, boolean>();
  /** Topics this gateway has published to, per shard, until a lookup confirms or drops them. */
  private readonly learned = new Map<string, Set<string>>();
  private merged = new Map<string, NodeInfo>();
  private nodeList: string[] = [];
  private byTopic = new Map<string, string[]>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  /** Bumped whenever the merged view changes; callers may cache on it. */
  version = 0;

  constructor(private readonly opts: TopologyOptions, private readonly logger: Logger, private readonly fetch: FetchNodes = fetchNodes) {
    this.rebuild();
  }

  /** First refresh (waited for, but a failing lookup does not stop start-up), then polling. */
  async start(): Promise<void> {
    await this.refresh();
    if (this.opts.lookups.length > 0 && !this.timer) {
      this.timer = setInterval(() => void this.refresh(), this.opts.pollIntervalMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  refresh(): Promise<void> {
    if (!this.refreshing) this.refreshing = this.doRefresh().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    await Promise.all(
      this.opts.lookups.map(async (lookup) => {
        try {
          const doc = await this.fetch(lookup, AbortSignal.timeout(this.opts.timeoutMs));
          this.answers.set(lookup, parseNodes(doc));
          if (this.lookupOk.get(lookup) === false) this.logger.info('lookup reachable again', { lookup });
          this.lookupOk.set(lookup, true);
        } catch (err) {
          if (this.lookupOk.get(lookup) !== false) this.logger.warn('lookup unreachable; keeping its last answer', { lookup, error: err instanceof Error ? err.message : String(err) });
          this.lookupOk.set(lookup, false);
        }
      }),
    );
    this.rebuild();
  }

  private rebuild(): void {
    const merged = new Map<string, NodeInfo>();
    const add = (address: string, topics: Iterable<string>) => {
      let n = merged.get(address);
      if (!n) merged.set(address, (n = { address, topics: new Set() }));
      for (const t of topics) n.topics.add(t);
    };
    for (const s of this.opts.staticShards) add(s, []);
    for (const answer of this.answers.values()) for (const [address, topics] of answer) add(address, topics);
    for (const [address, topics] of this.learned) {
      if (!merged.has(address)) continue;
      // A topic a lookup now reports is no longer only learned.
      for (const t of [...topics]) if (merged.get(address)!.topics.has(t)) topics.delete(t);
      add(address, topics);
    }
    const gone = [...this.merged.keys()].filter((a) => !merged.has(a));
    const changed = gone.length > 0 || merged.size !== this.merged.size || [...merged].some(([a, n]) => !sameSet(this.merged.get(a)?.topics, n.topics));
    this.merged = merged;
    if (!changed && this.version > 0) return;
    this.nodeList = [...merged.keys()].sort();
    this.byTopic = new Map();
    for (const n of merged.values()) for (const t of n.topics) (this.byTopic.get(t) ?? this.byTopic.set(t, []).get(t)!).push(n.address);
    for (const list of this.byTopic.values()) list.sort();
    this.version++;
    for (const a of gone) this.learned.delete(a);
  }

  /** Every shard known, sorted. */
  nodes(): readonly string[] {
    return this.nodeList;
  }

  /** The shards that hold `topic`, sorted. */
  shardsOf(topic: string): readonly string[] {
    return this.byTopic.get(topic) ?? [];
  }

  topics(): Map<string, readonly string[]> {
    return this.byTopic;
  }

  /** Remembers that `address` now holds `topic` (it was just published there). */
  learn(address: string, topic: string): void {
    if (this.merged.get(address)?.topics.has(topic)) return;
    (this.learned.get(address) ?? this.learned.set(address, new Set()).get(address)!).add(topic);
    this.rebuild();
  }

  /** Per lookup: whether its last poll succeeded. */
  lookups(): Record<string, boolean> {
    const out: Record<string, boolean> = {};
    for (const l of this.opts.lookups) out[l] = this.lookupOk.get(l) ?? false;
    return out;
  }
}

function sameSet(a: Set<string> | undefined, b: Set<string>): boolean {
  if (!a || a.size !== b.size) return false;
  for (const x of b) if (!a.has(x)) return false;
  return true;
}
