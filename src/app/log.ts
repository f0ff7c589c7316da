/**
 * The daemon's logger: pino JSON lines on stdout (journald, Loki and jq read them as they are), or, with
 * `log.format: pretty` / `--log-format pretty`, one readable line per event for a terminal. The pretty
 * form is a small formatter of our own over the same JSON, so both forms carry the same fields.
 */
import { pino, type Logger } from 'pino';

export interface LogSettings {
  level: string;
  format: 'json' | 'pretty';
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** Fields every line has, shown in their own place (or not at all) in the pretty form. */
const FRAME_FIELDS = new Set(['level', 'time', 'msg', 'service', 'pid', 'hostname']);

export function createLogger(settings: LogSettings, out: { write(s: string): unknown } = process.stdout): Logger {
  const options = { level: settings.level, base: { service: 'mta-sts-sidecar' } };
  if (settings.format === 'pretty') return pino(options, { write: (line: string) => out.write(prettyLine(line)) });
  return out === process.stdout ? pino(options) : pino(options, { write: (line: string) => out.write(line) });
}

/**
 * One pino JSON line as `2026-01-02T03:04:05.678Z INFO  policy learned domain=example.com id=1`, plus an
 * error's stack indented below it. A line that is not JSON passes through unchanged.
 */
export function prettyLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString() : '-';
  const level = (LEVEL_NAMES[entry.level as number] ?? String(entry.level)).padEnd(5);
  const fields: string[] = [];
  let stack: string | undefined;
  for (const [key, value] of Object.entries(entry)) {
    if (FRAME_FIELDS.has(key)) continue;
    if (isError(value)) {
      fields.push(`${key}=${quote(value.message)}`);
      stack = value.stack;
      continue;
    }
    fields.push(`${key}=${quote(value)}`);
  }
  const msg = typeof entry.msg === 'string' ? entry.msg : '';
  const head = [time, level, msg, ...fields].filter((s) => s !== '').join(' ');
  const tail = stack ? `\n${stack.split('\n').map((l) => `    ${l}`).join('\n')}` : '';
  return `${head}${tail}\n`;
}

function isError(v: unknown): v is { message: string; stack?: string } {
  return typeof v === 'object' && v !== null && typeof (v as { message?: unknown }).message === 'string' && 'stack' in v;
}

/** Bare when unambiguous, JSON-quoted when the value has spaces, quotes, `=` or is not a string. */
function quote(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return JSON.stringify(value);
}
