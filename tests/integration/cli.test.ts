// The one CLI: help for every command, clear errors for bad flags.

import { spawnSync } from 'node:child_process';
import { CLI } from '../helpers/process';

function run(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 15000 });
}

describe('sluice CLI', () => {
  it('lists its commands, each with what it is', () => {
    const r = run('--help');
    expect(r.status).toBe(0);
    for (const cmd of ['dev', 'shard', 'lookup', 'gateway', 'tail', 'pub', 'stat', 'to-http', 'to-file']) expect(r.stdout).toMatch(new RegExp(`^  ${cmd} +\\S.+$`, 'm'));
  });

  it.each([['--version'], ['version'], ['shard', '--version']])('%s prints the version and the nsqd protocol it speaks', (...args) => {
    const r = run(...args);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^sluice v\d+\.\d+\.\d+ \(speaks nsqd v1\.3\.0's protocols; node v\d+/);
  });

  it.each(['shard', 'lookup'])('%s --help prints every flag with its environment variable', (cmd) => {
    const r = run(cmd, '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--http-address');
    expect(r.stdout).toContain('--tcp-address');
    expect(r.stdout).toMatch(/env SLUICE_HTTP_ADDRESS/);
  });

  it('refuses unknown commands and bad flags with exit code 2', () => {
    expect(run('nope').status).toBe(2);
    const r = run('shard', '--mem-queue-size', 'lots');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--mem-queue-size: expected an integer');
  });
});
