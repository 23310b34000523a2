// Flags and environment → one typed config object per program.
// Each flag is `--kebab-name value` (or `--kebab-name=value`), also read from SLUICE_KEBAB_NAME; flags win.

export type FlagKind = 'string' | 'int' | 'bool' | 'duration' | 'list';

interface FlagBase<K extends FlagKind, T> {
  kind: K;
  help: string;
  default: T;
}
export type StringFlag = FlagBase<'string', string>;
export type IntFlag = FlagBase<'int', number> & { min?: number; max?: number };
export type BoolFlag = FlagBase<'bool', boolean>;
/** Durations are held in milliseconds; accepted as Go-style strings (`60s`, `1m30s`, `250ms`) or bare ms. */
export type DurationFlag = FlagBase<'duration', number>;
/** Repeatable (`--x a --x b`) or comma-separated in the environment. */
export type ListFlag = FlagBase<'list', string[]>;
export type Flag = StringFlag | IntFlag | BoolFlag | DurationFlag | ListFlag;
export type FlagSpec = Record<string, Flag>;

export type ConfigOf<S extends FlagSpec> = { [K in keyof S]: S[K]['default'] };

export const flag = {
  string: (def: string, help: string): StringFlag => ({ kind: 'string', default: def, help }),
  int: (def: number, help: string, min?: number, max?: number): IntFlag => ({ kind: 'int', default: def, help, min, max }),
  bool: (def: boolean, help: string): BoolFlag => ({ kind: 'bool', default: def, help }),
  duration: (defMs: number, help: string): DurationFlag => ({ kind: 'duration', default: defMs, help }),
  list: (def: string[], help: string): ListFlag => ({ kind: 'list', default: def, help }),
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** camelCase key → kebab-case flag name (`memQueueSize` → `mem-queue-size`). */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

export function envName(key: string): string {
  return 'SLUICE_' + flagName(key).replace(/-/g, '_').toUpperCase();
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^-?\d+$/.test(t)) return Number(t);
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null) {
    total += Number(m[1]) * UNIT_MS[m[2]];
    matched = re.lastIndex;
  }
  if (matched === 0 || matched !== t.length) throw new ConfigError(`invalid duration "${text}"`);
  return Math.round(total);
}

function convert(key: string, f: Flag, raw: string): string | number | boolean {
  switch (f.kind) {
    case 'string':
      return raw;
    case 'bool':
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      throw new ConfigError(`--${flagName(key)}: expected true or false, got "${raw}"`);
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`--${flagName(key)}: expected an integer, got "${raw}"`);
      const n = Number(raw);
      if (f.min !== undefined && n < f.min) throw new ConfigError(`--${flagName(key)}: must be >= ${f.min}`);
      if (f.max !== undefined && n > f.max) throw new ConfigError(`--${flagName(key)}: must be <= ${f.max}`);
      return n;
    }
    case 'duration':
      try {
        return parseDuration(raw);
      } catch {
        throw new ConfigError(`--${flagName(key)}: invalid duration "${raw}" (e.g. 60s, 250ms, 1h)`);
      }
    case 'list':
      throw new Error('unreachable');
  }
}

/** Builds the config: defaults, then environment, then argv. Returns the positional arguments too. */
export function parseConfig<S extends FlagSpec>(
  spec: S,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = {},
): { config: ConfigOf<S>; args: string[]; help: boolean } {
  const out: Record<string, unknown> = {};
  const byFlag = new Map<string, string>();
  for (const key of Object.keys(spec)) {
    const f = spec[key];
    byFlag.set(flagName(key), key);
    const fromEnv = env[envName(key)];
    if (fromEnv === undefined) out[key] = Array.isArray(f.default) ? [...f.default] : f.default;
    else if (f.kind === 'list') out[key] = fromEnv.split(',').map((s) => s.trim()).filter(Boolean);
    else out[key] = convert(key, f, fromEnv);
  }
  const args: string[] = [];
  const listsSeenOnArgv = new Set<string>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      help = true;
      continue;
    }
    if (!a.startsWith('--')) {
      args.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
    const key = byFlag.get(name);
    if (key === undefined) throw new ConfigError(`unknown flag --${name}`);
    const f = spec[key];
    let raw: string;
    if (eq !== -1) raw = a.slice(eq + 1);
    else if (f.kind === 'bool' && (i + 1 >= argv.length || !/^(true|false)$/i.test(argv[i + 1]))) raw = 'true';
    else {
      if (i + 1 >= argv.length) throw new ConfigError(`--${name} needs a value`);
      raw = argv[++i];
    }
    if (f.kind === 'list') {
      if (!listsSeenOnArgv.has(key)) {
        listsSeenOnArgv.add(key);
        out[key] = [];
      }
      (out[key] as string[]).push(...raw.split(',').map((s) => s.trim()).filter(Boolean));
    } else out[key] = convert(key, f, raw);
  }
  return { config: out as ConfigOf<S>, args, help };
}

function formatDefault(f: Flag): string {
  if (f.kind === 'list') return f.default.length ? f.default.join(',') : '(none)';
  if (f.kind === 'duration') return `${f.default}ms`;
  if (f.kind === 'string') return f.default === '' ? '(none)' : JSON.stringify(f.default);
  return String(f.default);
}

export function helpText(program: string, summary: string, spec: FlagSpec): string {
  const lines = [`Usage: sluice ${program} [flags]`, '', summary, '', 'Flags (each also read from the environment variable shown):'];
  for (const key of Object.keys(spec)) {
    const f = spec[key];
    const value = f.kind === 'bool' ? '' : f.kind === 'duration' ? ' <duration>' : ` <${f.kind}>`;
    lines.push(`  --${flagName(key)}${value}`);
    lines.push(`      ${f.help} (default ${formatDefault(f)}; env ${envName(key)})`);
  }
  return lines.join('\n') + '\n';
}

/** Splits "host:port" (IPv6 as "[::1]:4150"); port 0 is allowed (ephemeral). */
export function parseHostPort(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) throw new ConfigError(`invalid address "${text}" (want host:port)`);
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(`invalid port in "${text}"`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
