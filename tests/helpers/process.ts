// Starts the real `sluice` CLI (built into dist/) as a child process on ephemeral ports and
// learns its addresses from the structured "listening" log line every program writes.

import { spawn, ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** The built CLI, found from the repository root (this file also runs compiled, from dist/). */
function repoRoot(dir: string): string {
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return dir;
}
export const CLI = path.join(repoRoot(__dirname), 'dist/bin/sluice.js');

export interface Running {
  child: ChildProcess;
  /** The fields of the "listening" log line (e.g. http, tcp: "127.0.0.1:port"). */
  addresses: Record<string, string>;
  /** Every structured log line seen so far. */
  logs: Record<string, unknown>[];
  /** Raw stderr text (non-JSON lines included). */
  stderr(): string;
  /** Everything the program printed on stdout so far. */
  stdout(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  kill9(): Promise<void>;
}

export async function startProgram(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Running> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let raw = '';
  let out = '';
  let pending = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => (out += d));
  let exited = false;
  const exitPromise = new Promise<number | null>((resolve) => child.once('exit', (code) => { exited = true; resolve(code); }));
  const addresses = await new Promise<Record<string, string>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start in time:\n${raw}`)), opts.timeoutMs ?? 15000);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      raw += chunk;
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          logs.push(rec);
          if (rec.message === 'listening') {
            clearTimeout(timer);
            resolve(rec as Record<string, string>);
          }
        } catch {
          /* not a log line */
        }
      }
    });
    exitPromise.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${args[0]} exited with ${code} before listening:\n${raw}`));
    });
  });
  return {
    child,
    addresses,
    logs,
    stderr: () => raw,
    stdout: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!exited) child.kill(signal);
      return exitPromise;
    },
    async kill9() {
      if (!exited) child.kill('SIGKILL');
      await exitPromise;
    },
  };
}

export function tempDir(prefix = 'sluice-test-'): { path: string; remove(): void } {
  const p = mkdtempSync(path.join(tmpdir(), prefix));
  return { path: p, remove: () => rmSync(p, { recursive: true, force: true }) };
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 10000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
