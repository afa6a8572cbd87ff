// format.js: numbers written the way digestctl writes them (lib/core/clock.c's
// clock_format_span, src/digestctl/table.c's fmt_bytes and fmt_time), so the page
// and the terminal say the same thing in the same words. Pure functions; the
// browser test imports this module in node too (tests/browser/format.test.js).

const SPAN_UNITS = [['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000]];
const BYTE_UNITS = ['KB', 'MB', 'GB', 'TB'];
const grouped = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

// An integer from a JSON number or a numeric string (audit records keep numbers as text);
// null for anything else, as digestctl's field_int falls back to its default.
export function int(v) {
  if (typeof v === 'number' && Number.isFinite(v)) return Math.trunc(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  return null;
}

// "850ms", "12s", "3m12s", "2h5m", "1d4h": the largest unit and the next when it is not 0;
// "-" when unknown (null or negative), as digestctl prints it.
export function span(ms) {
  const n = int(ms);
  if (n === null || n < 0) return '-';
  if (n < 1000) return `${n}ms`;
  let i = 0;
  while (n < SPAN_UNITS[i][1]) i++;
  const [name, size] = SPAN_UNITS[i];
  const whole = Math.floor(n / size);
  if (i + 1 < SPAN_UNITS.length) {
    const [next, nextSize] = SPAN_UNITS[i + 1];
    const rest = Math.floor((n % size) / nextSize);
    if (rest > 0) return `${whole}${name}${rest}${next}`;
  }
  return `${whole}${name}`;
}

// "980B", "12.4KB", "3.1MB"; "-" when unknown.
export function bytes(v) {
  const n = int(v);
  if (n === null || n < 0) return '-';
  if (n < 1024) return `${n}B`;
  let x = n / 1024;
  let u = 0;
  while (x >= 1024 && u + 1 < BYTE_UNITS.length) {
    x /= 1024;
    u++;
  }
  return `${x.toFixed(1)}${BYTE_UNITS[u]}`;
}

// "1,204"; "-" when unknown (null or negative).
export function count(v) {
  const n = int(v);
  return n === null || n < 0 ? '-' : grouped.format(n);
}

// Epoch ms as "2026-12-03 00:12:01.123Z" (UTC, like digestctl show); "-" for none.
export function time(v) {
  const n = int(v);
  if (n === null || n <= 0) return '-';
  return new Date(n).toISOString().replace('T', ' ');
}

// The heartbeat's async_mode (the effective USE_ASYNC_DIGEST) in words:
// "true" -> "async", "false" -> "sync", "25%" -> "25% async".
export function rollout(mode) {
  if (mode === 'true') return 'async';
  if (mode === 'false') return 'sync';
  if (typeof mode === 'string' && /^\d{1,3}%$/.test(mode)) return `${mode} async`;
  return mode ? String(mode) : 'unknown';
}
