// chart.js: the last hour per minute (GET /admin/history) as plain SVG: one line
// per count, a grid with the scale, and one hover band per minute whose tooltip
// (<title>) gives that minute's numbers. A few dozen lines of our own rather than
// a charting library: six series of sixty points need no more, and there is
// nothing to pin, update or embed.

import { svg } from './dom.js';
import { count } from './format.js';

export const SERIES = ['enqueued', 'delivered', 'failed', 'dead', 'sync', 'fallback'];

const H = 180; // px; the width is the element's own, so text is never scaled
const MIN_W = 280;
const PAD = { left: 34, right: 8, top: 10, bottom: 20 };

// The smallest 1, 2 or 5 times a power of ten that is at least n (and at least 1).
function niceCeiling(n) {
  let step = 1;
  while (step * 5 < n) step *= 10;
  return [1, 2, 5, 10].map((k) => k * step).find((v) => v >= n) || 1;
}

function minuteLabel(startMs) {
  return new Date(startMs).toISOString().slice(11, 16);
}

// Redraws node (an <svg>) from the minutes of a history answer, oldest first.
export function drawHistory(node, minutes) {
  const W = Math.max(MIN_W, Math.round(node.getBoundingClientRect().width));
  const n = minutes.length;
  const top = niceCeiling(Math.max(1, ...minutes.flatMap((m) => SERIES.map((k) => m[k] || 0))));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (n > 1 ? (i * plotW) / (n - 1) : plotW / 2);
  const y = (v) => PAD.top + plotH - (v * plotH) / top;
  const parts = [];

  for (const v of [0, top / 2, top]) {
    parts.push(svg('line', { class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
    parts.push(svg('text', { class: 'axis', x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end',
                             text: Number.isInteger(v) ? v : v.toFixed(1) }));
  }
  for (const i of [0, Math.floor((n - 1) / 2), n - 1]) {
    if (i < 0) continue;
    const ago = n - 1 - i;
    parts.push(svg('text', { class: 'axis', x: x(i), y: H - 4,
                             'text-anchor': i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle',
                             text: ago === 0 ? 'now' : `${ago}m ago` }));
  }
  for (const key of [...SERIES].reverse()) { // enqueued and delivered drawn last, on top
    const points = minutes.map((m, i) => `${x(i).toFixed(1)},${y(m[key] || 0).toFixed(1)}`);
    parts.push(svg('polyline', { class: `line s-${key}`, points: points.join(' ') }));
  }
  const band = n > 1 ? plotW / (n - 1) : plotW;
  minutes.forEach((m, i) => {
    const tip = `${minuteLabel(m.start_ms)} UTC: ` +
      SERIES.map((k) => `${count(m[k] || 0)} ${k}`).join(', ') +
      (m.lag === null || m.lag === undefined ? '' : `; lag ${count(m.lag)}`);
    parts.push(svg('rect', { class: 'hover', x: x(i) - band / 2, y: PAD.top, width: band,
                             height: plotH }, svg('title', { text: tip })));
  });
  node.setAttribute('viewBox', `0 0 ${W} ${H}`);
  node.replaceChildren(...parts);
}

// The hour's total of each series, for the legend.
export function totals(minutes) {
  const out = {};
  for (const key of SERIES) out[key] = minutes.reduce((sum, m) => sum + (m[key] || 0), 0);
  return out;
}
