// Structured JSON logging (winston) with one redaction rule for every component.
// Secrets never reach a log line: keys that look like credentials are masked wherever they appear.

import winston from 'winston';

export type Logger = winston.Logger;
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

const SECRET_KEY = /^(authorization|cookie|set-cookie|token|access_token|gateway_?token|secret|password|api_?key|receipt_secret|signature|x-hub-signature-256|stripe-signature)$/i;
const SECRET_QUERY = /([?&](?:token|access_token|secret|api_key)=)[^&\s"]*/gi;

/** Returns a copy of `value` with credential-looking fields and query parameters masked. */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.replace(SECRET_QUERY, '$1[REDACTED]');
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value instanceof Error) return { name: value.name, message: redact(value.message) };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? '[REDACTED]' : redact(v, depth + 1);
  return out;
}

const redactFormat = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (SECRET_KEY.test(key)) info[key] = '[REDACTED]';
    else if (key !== 'level') info[key] = redact(info[key]);
  }
  return info;
});

const LEVELS: Record<string, number> = { error: 0, warn: 1, info: 2, http: 3, verbose: 4, debug: 5, silly: 6 };

/**
 * The "listening" record (the bound addresses) is how tools and tests learn where a program
 * listens, so it is written whatever the level. The logger itself runs at `info` at least (so
 * that record gets through) and this format drops what is above the configured level; at
 * `debug`, isDebugEnabled() stays true only when debug was asked for.
 */
const levelFilter = winston.format((info, opts) =>
  info.message === 'listening' || (LEVELS[info.level] ?? 0) <= (opts as { max: number }).max ? info : false,
);

export function createLogger(component: string, level: LogLevel | string = 'info'): Logger {
  const max = LEVELS[level] ?? LEVELS.info;
  return winston.createLogger({
    level: max >= LEVELS.info ? level : 'info',
    defaultMeta: { component },
    format: winston.format.combine(levelFilter({ max }), redactFormat(), winston.format.timestamp(), winston.format.json()),
    // Logs go to stderr so that utilities can keep stdout for their output.
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] })],
  });
}

/** A logger that drops everything, for unit tests and library use. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
