// What the benchmark scripts share: their --name value flags, starting a real `sluice` program
// (dist/bin/sluice.js) and waiting for its "listening" log line, and the CPU a process has used.

import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const CLI = path.resolve(__dirname, '../bin/sluice.js');

/** The value after `--name` on this process's command line, or `def`. */
export function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : process.argv[i + 1];
}

/** Starts `sluice <args>` (with Node flags `nodeArgs`) and resolves with the addresses it logs as listening. */
export function start(args: string[], nodeArgs: string[] = []): Promise<{ child: ChildProcess; addr: Record<string, string> }> {
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      buf += d;
      for (const line of buf.split('\n')) {
        try {
          const rec = JSON.parse(line) as Record<string, string>;
          if (rec.message === 'listening') resolve({ child, addr: rec });
        } catch {
          /* partial line */
        }
      }
      if (buf.length > 100_000) buf = buf.slice(-10_000);
    });
    child.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}: ${buf}`)));
  });
}

/** CPU seconds a process has used (Linux /proc; 0 elsewhere): utime + stime at 100 ticks/s. */
export function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}
