// format.test.js: the page writes spans, sizes and times as digestctl does. The
// span cases are tests/unit/core/test_clock.c's, for lib/core/clock.c's
// clock_format_span; the sizes follow src/digestctl/table.c's fmt_bytes.
// Plain node: web/format.js is a module with no DOM in it.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { bytes, count, int, rollout, span, time } from '../../web/format.js';

test('spans read as two units at most, like clock_format_span', () => {
  const cases = [
    [0, '0ms'], [800, '800ms'], [999, '999ms'], [1000, '1s'], [45999, '45s'], [60000, '1m'],
    [192000, '3m12s'], [14 * 60000, '14m'], [14 * 60000 + 500, '14m'], [3600000, '1h'],
    [2 * 3600000 + 5 * 60000 + 30000, '2h5m'], [86400000, '1d'], [3 * 86400000 + 4 * 3600000, '3d4h'],
    [400 * 86400000, '400d'],
  ];
  for (const [ms, want] of cases) assert.equal(span(ms), want, `${ms}`);
  // Unknown, as digestctl's fmt_span prints it; a numeric string as records keep numbers.
  for (const v of [null, undefined, -1, 'x', NaN]) assert.equal(span(v), '-');
  assert.equal(span('192000'), '3m12s');
});

test('sizes like fmt_bytes', () => {
  assert.equal(bytes(0), '0B');
  assert.equal(bytes(980), '980B');
  assert.equal(bytes(1024), '1.0KB');
  assert.equal(bytes(12.4 * 1024), '12.4KB');
  assert.equal(bytes(11661312), '11.1MB');
  assert.equal(bytes(3 * 1024 ** 3), '3.0GB');
  assert.equal(bytes(5 * 1024 ** 5), '5120.0TB');
  assert.equal(bytes(-1), '-');
});

test('counts, times and integers', () => {
  assert.equal(count(20100), '20,100');
  assert.equal(count('7'), '7');
  assert.equal(count(null), '-');
  assert.equal(count(-1), '-');
  assert.equal(time(1764892800123), '2025-12-05 00:00:00.123Z');
  assert.equal(time(0), '-');
  assert.equal(int('12'), 12);
  assert.equal(int('1.5'), null);
  assert.equal(int(3.9), 3);
});

test('the rollout in words, from a heartbeat async_mode', () => {
  assert.equal(rollout('true'), 'async');
  assert.equal(rollout('false'), 'sync');
  assert.equal(rollout('25%'), '25% async');
  assert.equal(rollout('100%'), '100% async');
  assert.equal(rollout(''), 'unknown');
  assert.equal(rollout(undefined), 'unknown');
  assert.equal(rollout('later'), 'later');
});
