// A binary min-heap of messages keyed by `pri`, with each message's position kept in
// `heapIndex` so that finishing or touching one is O(log n) instead of a scan.

import type { Message } from './message';

export class MessageHeap {
  private items: Message[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Message | undefined {
    return this.items[0];
  }

  push(m: Message): void {
    m.heapIndex = this.items.length;
    this.items.push(m);
    this.up(m.heapIndex);
  }

  pop(): Message | undefined {
    const items = this.items;
    if (items.length === 0) return undefined;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      last.heapIndex = 0;
      this.down(0);
    }
    top.heapIndex = -1;
    return top;
  }

  remove(m: Message): void {
    const i = m.heapIndex;
    if (i < 0 || this.items[i] !== m) return;
    const last = this.items.pop()!;
    if (i < this.items.length) {
      this.items[i] = last;
      last.heapIndex = i;
      this.down(i);
      this.up(last.heapIndex);
    }
    m.heapIndex = -1;
  }

  /** Re-positions `m` after its `pri` changed. */
  update(m: Message): void {
    if (m.heapIndex < 0) return;
    this.up(m.heapIndex);
    this.down(m.heapIndex);
  }

  clear(): Message[] {
    const all = this.items;
    this.items = [];
    for (const m of all) m.heapIndex = -1;
    return all;
  }

  values(): readonly Message[] {
    return this.items;
  }

  private up(i: number): void {
    const items = this.items;
    const m = items[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (items[p].pri <= m.pri) break;
      items[i] = items[p];
      items[i].heapIndex = i;
      i = p;
    }
    items[i] = m;
    m.heapIndex = i;
  }

  private down(i: number): void {
    const items = this.items;
    const n = items.length;
    const m = items[i];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && items[r].pri < items[l].pri ? r : l;
      if (items[c].pri >= m.pri) break;
      items[i] = items[c];
      items[i].heapIndex = i;
      i = c;
    }
    items[i] = m;
    m.heapIndex = i;
  }
}
