// to-file's durable core: files rotated by size at record boundaries and by age, gzip files valid
// after every sync, never overwriting a file, and the Archiver finishing a message only after a
// sync that covers it has completed (requeueing it if the sync fails).

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Archiver, FileSink, type Archivable, type SinkLike } from '../../tools/file-sink';
import { tempDir } from '../helpers/process';

const rec = (i: number): Buffer => Buffer.from(`m${String(i).padStart(3, '0')}-${'x'.repeat(95)}`); // 100 bytes + '\n'

function read(dir: string): { names: string[]; text: string[] } {
  const names = readdirSync(dir).sort();
  const text = names.map((n) => {
    const raw = readFileSync(path.join(dir, n));
    return (n.endsWith('.gz') ? zlib.gunzipSync(raw) : raw).toString();
  });
  return { names, text };
}

describe('FileSink', () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => (dir = tempDir('sluice-sink-')));
  afterEach(() => dir.remove());

  it('rotates by size at a record boundary, keeping every record in order', async () => {
    const sink = new FileSink({ dir: dir.path, prefix: 'orders.host', gzip: false, rotateBytes: 250, rotateIntervalMs: 0, now: () => Date.UTC(2026, 0, 2, 3, 4, 5) });
    for (let i = 0; i < 10; i++) sink.append(rec(i));
    expect(sink.rotationDue()).toBe(true);
    await sink.close();
    const { names, text } = read(dir.path);
    expect(names).toEqual(['orders.host.20260102T030405Z.0000.log', 'orders.host.20260102T030405Z.0001.log', 'orders.host.20260102T030405Z.0002.log', 'orders.host.20260102T030405Z.0003.log']);
    expect(text.map((t) => t.split('\n').length - 1)).toEqual([3, 3, 3, 1]); // each passes 250 by less than one record
    expect(text.join('')).toBe(Array.from({ length: 10 }, (_, i) => rec(i).toString() + '\n').join(''));
    expect(sink.created).toEqual(names);
  });

  it('rotates by age at a sync, and makes no file without records', async () => {
    let mono = 0;
    const sink = new FileSink({ dir: dir.path, prefix: 't.h', gzip: false, rotateBytes: 0, rotateIntervalMs: 1000, monotonic: () => mono });
    await sink.sync();
    expect(readdirSync(dir.path)).toEqual([]);
    sink.append(rec(1));
    await sink.sync();
    mono = 500;
    sink.append(rec(2));
    await sink.sync();
    mono = 1000;
    await sink.sync(); // old enough: closed, even with nothing new
    sink.append(rec(3));
    await sink.close();
    expect(read(dir.path).text.map((t) => t.split('\n').length - 1)).toEqual([2, 1]);
  });

  it('with gzip, a file is a valid gzip stream after every sync, before it is closed', async () => {
    const sink = new FileSink({ dir: dir.path, prefix: 't.h', gzip: true, rotateBytes: 0, rotateIntervalMs: 0 });
    sink.append(Buffer.from('one'));
    await sink.sync();
    expect(read(dir.path).text).toEqual(['one\n']);
    sink.append(Buffer.from('two'));
    sink.append(Buffer.from('three'));
    await sink.sync();
    expect(read(dir.path)).toEqual({ names: [expect.stringMatching(/^t\.h\.\d{8}T\d{6}Z\.0000\.log\.gz$/)], text: ['one\ntwo\nthree\n'] });
    await sink.close();
  });

  it('never opens an existing file: a second writer with the same name and time takes the next number', async () => {
    const now = () => Date.UTC(2026, 0, 1);
    const a = new FileSink({ dir: dir.path, prefix: 't.h', gzip: false, rotateBytes: 0, rotateIntervalMs: 0, now });
    const b = new FileSink({ dir: dir.path, prefix: 't.h', gzip: false, rotateBytes: 0, rotateIntervalMs: 0, now });
    a.append(Buffer.from('from a'));
    b.append(Buffer.from('from b'));
    await a.close();
    await b.close();
    expect(read(dir.path).text).toEqual(['from a\n', 'from b\n']);
  });

  it('a failed sync abandons the file; the next sync starts a new one', async () => {
    const sink = new FileSink({ dir: path.join(dir.path, 'missing'), prefix: 't.h', gzip: false, rotateBytes: 0, rotateIntervalMs: 0 });
    sink.append(Buffer.from('x'));
    await expect(sink.sync()).rejects.toThrow(/ENOENT/);
    expect(sink.bufferedBytes).toBe(0);
  });
});

describe('Archiver', () => {
  /** A sink whose syncs complete only when the test says so. */
  class ManualSink implements SinkLike {
    appended: string[] = [];
    syncs: Array<{ covers: string[]; done: () => void; fail: (e: Error) => void }> = [];
    append(body: Buffer): void {
      this.appended.push(body.toString());
    }
    rotationDue(): boolean {
      return false;
    }
    sync(): Promise<void> {
      const covers = this.appended.splice(0);
      return new Promise((resolve, reject) => this.syncs.push({ covers, done: resolve, fail: reject }));
    }
    async close(): Promise<void> {}
  }

  const msg = (body: string): Archivable & { log: string[] } => {
    const log: string[] = [];
    return { body: Buffer.from(body), log, finish: () => (log.push('finish'), true), requeue: () => (log.push('requeue'), true) };
  };
  const tick = () => new Promise((r) => setImmediate(r));

  it('finishes a message only after the sync covering it has resolved', async () => {
    const sink = new ManualSink();
    const written: number[] = [];
    const a = new Archiver(sink, 100, { written: (n) => written.push(n), failed: () => undefined });
    const [m1, m2, m3] = [msg('1'), msg('2'), msg('3')];
    a.add(m1);
    a.add(m2);
    const first = a.flush();
    await tick();
    expect(sink.syncs.map((s) => s.covers)).toEqual([['1', '2']]);
    a.add(m3); // arrives while the first sync runs: not covered by it
    const second = a.flush();
    await tick();
    expect(m1.log).toEqual([]);
    sink.syncs[0].done();
    await first;
    expect([m1.log, m2.log, m3.log]).toEqual([['finish'], ['finish'], []]);
    await tick();
    expect(sink.syncs[1].covers).toEqual(['3']);
    sink.syncs[1].done();
    await second;
    expect(m3.log).toEqual(['finish']);
    expect(written).toEqual([2, 1]);
  });

  it('syncs by itself once syncEvery messages wait', async () => {
    const sink = new ManualSink();
    const a = new Archiver(sink, 2, { written: () => undefined, failed: () => undefined });
    a.add(msg('a'));
    await tick();
    expect(sink.syncs).toHaveLength(0);
    a.add(msg('b'));
    await tick();
    expect(sink.syncs.map((s) => s.covers)).toEqual([['a', 'b']]);
  });

  it('requeues what a failed sync covered, and reports it', async () => {
    const sink = new ManualSink();
    const failures: number[] = [];
    const a = new Archiver(sink, 100, { written: () => undefined, failed: (_e, n) => failures.push(n) });
    const m = msg('x');
    a.add(m);
    const f = a.flush();
    await tick();
    sink.syncs[0].fail(new Error('EIO'));
    await f;
    expect(m.log).toEqual(['requeue']);
    expect(failures).toEqual([1]);
  });
});
