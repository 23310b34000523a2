// Receipt batching for the gateway consumer, pure (no timers, no I/O): acks, requeues and touches
// wait here until a batch is full or the consumer's flush timer fires, become one JSON body for
// POST /v1/receipts/{ack,requeue,touch}, and the gateway's per-receipt answer is sorted into
// settled, worth retrying (its shard did not answer) and refused.

export type SettleOp = 'ack' | 'requeue' | 'touch';
export const SETTLE_OPS: readonly SettleOp[] = ['ack', 'requeue', 'touch'];

export interface PendingReceipt {
  readonly receipt: string;
  /** requeue only: wait this long before the next delivery. */
  readonly delayMs?: number;
  /** Times it was already sent and came back SHARD_UNAVAILABLE. */
  readonly tries: number;
}

/** The receipt statuses of receipts-result.json. */
export type ReceiptStatus = 'OK' | 'RECEIPT_INVALID' | 'RECEIPT_STALE' | 'NOT_IN_FLIGHT' | 'FORBIDDEN' | 'SHARD_UNKNOWN' | 'SHARD_UNAVAILABLE';
const STATUSES = new Set<string>(['OK', 'RECEIPT_INVALID', 'RECEIPT_STALE', 'NOT_IN_FLIGHT', 'FORBIDDEN', 'SHARD_UNKNOWN', 'SHARD_UNAVAILABLE']);

/** Receipts are base64url (the gateway signs them so): safe to place in JSON text as they are. */
export const RECEIPT_PATTERN = /^[A-Za-z0-9_-]{1,1800}$/;

export class ReceiptBatcher {
  private readonly queues: Record<SettleOp, PendingReceipt[]> = { ack: [], requeue: [], touch: [] };

  /** `maxBatch`: most receipts in one request (the gateway takes up to 5000). */
  constructor(private readonly maxBatch: number) {
    if (!(maxBatch >= 1 && maxBatch <= 5000)) throw new RangeError('maxBatch must be 1..5000');
  }

  /** Queues one; returns true when `op` has a full batch waiting (send it now). */
  add(op: SettleOp, item: PendingReceipt): boolean {
    const q = this.queues[op];
    q.push(item);
    return q.length >= this.maxBatch;
  }

  /** Receipts waiting, over all ops. */
  get size(): number {
    return this.queues.ack.length + this.queues.requeue.length + this.queues.touch.length;
  }

  /** The next batch of `op` (oldest first, at most maxBatch), or null when none waits. */
  take(op: SettleOp): PendingReceipt[] | null {
    const q = this.queues[op];
    if (q.length === 0) return null;
    if (q.length <= this.maxBatch) {
      this.queues[op] = [];
      return q;
    }
    return q.splice(0, this.maxBatch);
  }
}

/** The request body (receipts-request.json) for one batch. */
export function settleBody(op: SettleOp, items: readonly PendingReceipt[]): string {
  let out = '{"receipts":[';
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (i > 0) out += ',';
    out += op === 'requeue' && it.delayMs ? `{"receipt":"${it.receipt}","delay_ms":${Math.max(0, Math.round(it.delayMs))}}` : `"${it.receipt}"`;
  }
  return out + ']}';
}

export interface SettleOutcome {
  ok: number;
  /** Their shard did not answer: send them again (at most `maxTries` times in all). */
  retry: PendingReceipt[];
  /** Refused for good, with why (their messages will be delivered again when their leases end). */
  refused: Array<{ item: PendingReceipt; status: ReceiptStatus }>;
}

/** Reads the gateway's answer (receipts-result.json) to a batch of `items`; throws on a malformed one. */
export function sortResults(text: string, items: readonly PendingReceipt[], maxTries: number): SettleOutcome {
  const doc = JSON.parse(text) as { results?: unknown };
  if (!Array.isArray(doc.results) || doc.results.length !== items.length) throw new Error(`receipts answer: want ${items.length} results`);
  const out: SettleOutcome = { ok: 0, retry: [], refused: [] };
  doc.results.forEach((r: unknown, i) => {
    const status = (r as { status?: unknown } | null)?.status;
    if (typeof status !== 'string' || !STATUSES.has(status)) throw new Error(`receipts answer: unknown status ${JSON.stringify(status)}`);
    const item = items[i];
    if (status === 'OK') out.ok++;
    else if (status === 'SHARD_UNAVAILABLE' && item.tries + 1 < maxTries) out.retry.push({ ...item, tries: item.tries + 1 });
    else out.refused.push({ item, status: status as ReceiptStatus });
  });
  return out;
}
