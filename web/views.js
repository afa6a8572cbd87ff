// views.js: each admin answer drawn into its part of the page. The words and
// the order follow digestctl's human views (src/digestctl/views.c): the verdict
// first, what is stuck and who holds it, then the details.

import { byId, el, setStat, show } from './dom.js';
import { bytes, count, int, rollout, span, time } from './format.js';

const VERDICT_CLASS = {
  healthy: 'ok',
  'backlog growing': 'warn',
  stuck: 'bad',
  'no consumers': 'bad',
};

// The ms part of a stream id ("1764892800123-0"), null when it is not one.
function idMs(id) {
  const m = /^(\d+)-\d+$/.exec(id || '');
  return m ? Number(m[1]) : null;
}

function ago(now, thenMs) {
  const t = int(thenMs);
  return t ? `${span(now - t)} ago` : '-';
}

function td(text, cls) {
  return el('td', { class: cls, text: text === undefined || text === null || text === '' ? '-' : text });
}

function badge(text, cls) {
  return el('span', { class: `badge ${cls}`, text });
}

// A request id that opens its timeline (actions.show).
function requestLink(id, actions) {
  if (!id) return '-';
  return el('button', { type: 'button', class: 'link', text: id, title: 'Show its timeline',
                        dataset: { request: id }, onclick: () => actions.show(id) });
}

function sum(list, key) {
  return list.reduce((s, x) => s + (int(x[key]) || 0), 0);
}

// --- the queue: verdict, rollout, tiles ----------------------------------------------

function drawVerdict(q) {
  const v = byId('verdict');
  v.textContent = `verdict: ${q.verdict_text}`;
  v.className = `verdict ${VERDICT_CLASS[q.verdict] || ''}`;
  v.dataset.verdict = q.verdict;
}

// The effective USE_ASYNC_DIGEST of the live processes, as their heartbeats carry it.
function drawRollout(procs) {
  const modes = new Map();
  for (const p of procs) modes.set(p.async_mode, (modes.get(p.async_mode) || 0) + 1);
  const detail = [...modes].map(([m, n]) => `${rollout(m)} × ${n}`).sort().join(', ');
  if (modes.size === 0) {
    byId('rollout').textContent = 'unknown';
    byId('rollout-detail').textContent = '(no live process)';
  } else if (modes.size === 1) {
    const [[mode, n]] = [...modes];
    byId('rollout').textContent = rollout(mode);
    byId('rollout-detail').textContent = `(USE_ASYNC_DIGEST=${mode}, ${n} process${n === 1 ? '' : 'es'})`;
  } else {
    byId('rollout').textContent = 'mixed';
    byId('rollout-detail').textContent = `(${detail})`;
  }
}

function drawTiles(q) {
  const now = q.now_ms;
  const groups = q.groups || [];
  const procs = q.procs || [];
  const rates = q.rates || {};
  const hour = rates.last_hour || {};
  const first = idMs(q.first_id);

  setStat('length', count(q.length));
  byId('stream-sub').textContent =
    `${first ? `the first ${span(now - first)} old; ` : ''}` +
    `${count((rates.this_minute || {}).enqueued)} added this minute, ` +
    `${count((rates.last_minute || {}).enqueued)} last minute`;

  setStat('lag', groups.length ? count(sum(groups, 'lag')) : '-');
  const trend = q.lag_trend || {};
  byId('lag-sub').textContent = groups.length
    ? `sampled ${count(trend.current)}, a minute before ${count(trend.previous)}`
    : 'no consumer group on the stream';

  setStat('pending', count(sum(groups, 'pending')));
  const oldest = q.oldest_pending;
  const stuck = q.stuck;
  byId('pending-sub').textContent = stuck
    ? `stuck: idle ${span(stuck.idle_ms)} (limit ${span(q.stuck_after_ms)}) under ${stuck.consumer}`
    : oldest ? `oldest ${span(oldest.age_ms)} old, idle ${span(oldest.idle_ms)}` : 'none';

  setStat('in_flight', count(sum(procs, 'in_flight')));
  setStat('concurrency', count(sum(procs, 'concurrency')));
  byId('flight-sub').textContent = `${count(q.live_consumers)} live consumer(s)`;

  setStat('dead', count(q.dead));
  const newest = (q.dead_recent || [])[0];
  byId('dead-sub').textContent = newest
    ? `newest: ${newest.reason || '?'} (${ago(now, newest.failed_ms)})` : 'none';

  for (const key of ['delivered', 'enqueued', 'failed', 'dead', 'sync', 'fallback'])
    setStat(`hour.${key}`, count(hour[key]));
}

export function drawQueue(q) {
  drawVerdict(q);
  drawRollout(q.procs || []);
  drawTiles(q);
}

// --- tables ---------------------------------------------------------------------------

// Live processes from their heartbeats, then the group's consumers without one, as dead.
export function drawProcs(p) {
  const rows = (p.procs || []).map((x) => el('tr', { dataset: { name: x.name, state: 'live' } },
    td(x.name, 'mono'), el('td', {}, badge('live', 'ok')), td(x.role), td(x.version),
    td(span(x.uptime_ms), 'num'), td(`${count(x.in_flight)}/${count(x.concurrency)}`, 'num'),
    td(bytes(x.rss_bytes), 'num'), td(`${span(x.beat_age_ms)} ago`, 'num'),
    td(rollout(x.async_mode))));
  for (const d of p.dead_consumers || []) {
    rows.push(el('tr', { class: 'dead', dataset: { name: d.name, state: 'dead' } },
      td(d.name, 'mono'), el('td', {}, badge('dead', 'bad')), td('consumer'), td('-'), td('-', 'num'),
      td(`${count(d.pending)} pending`, 'num'), td('-', 'num'),
      td(`none (idle ${span(d.idle_ms)})`, 'num'), td('-')));
  }
  byId('procs-table').tBodies[0].replaceChildren(...rows);
  byId('procs-count').textContent =
    `${count((p.procs || []).length)} live, ${count((p.dead_consumers || []).length)} dead`;
  show(byId('procs-empty'), rows.length === 0);
}

// The oldest pending entries; one idle past the stuck limit is marked, as is a dead holder.
export function drawPending(p, stuckAfterMs, actions) {
  const entries = p.entries || [];
  const rows = entries.map((e) => {
    const stuck = stuckAfterMs > 0 && e.idle_ms > stuckAfterMs;
    return el('tr', { class: stuck ? 'stuck' : !e.consumer_alive ? 'dead' : null,
                      dataset: { id: e.id, request: e.request_id, stuck: stuck ? 'yes' : 'no' } },
      td(e.id, 'mono'), el('td', {}, requestLink(e.request_id, actions)), td(e.consumer, 'mono'),
      el('td', {}, e.consumer_alive ? badge('live', 'ok') : badge('none (dead)', 'bad'),
         stuck ? ' ' : null, stuck ? badge('stuck', 'bad') : null),
      td(span(e.age_ms), 'num'), td(span(e.idle_ms), 'num'), td(count(e.deliveries), 'num'));
  });
  byId('pending-table').tBodies[0].replaceChildren(...rows);
  byId('pending-count').textContent = !p.group_exists ? `(no group ${p.group} on the stream)`
    : entries.length < p.count ? `${count(p.count)}; the oldest ${entries.length}` : count(p.count);
  show(byId('pending-empty'), rows.length === 0);
}

// The newest dead jobs, each with its Requeue button.
export function drawDead(d, actions) {
  const now = d.now_ms;
  const rows = (d.entries || []).map((e) => el('tr', { dataset: { id: e.id, request: e.request_id } },
    td(e.id, 'mono'), el('td', {}, requestLink(e.request_id, actions)), td(e.reason, 'wrap'),
    td(count(e.attempts), 'num'), td(ago(now, e.failed_ms), 'num'),
    el('td', {}, el('button', { type: 'button', class: 'small', text: 'Requeue',
                                 dataset: { requeue: e.request_id },
                                 onclick: (ev) => actions.requeue(e.request_id, ev.currentTarget) }))));
  byId('dead-table').tBodies[0].replaceChildren(...rows);
  byId('dead-count').textContent = rows.length < d.count
    ? `${count(d.count)}; the newest ${rows.length}` : count(d.count);
  show(byId('dead-empty'), rows.length === 0);
  const all = byId('requeue-all');
  all.disabled = !(d.count > 0);
}

// --- one request: what digestctl show prints --------------------------------------------

function where(r) {
  const p = r.pending;
  if (p) {
    return `${r.stream_id} pending under ${p.consumer} (${p.consumer_alive ? 'live' : 'no heartbeat: dead'}),` +
      ` idle ${span(p.idle_ms)}, deliveries ${count(p.deliveries)}`;
  }
  if (r.entry) return `${r.stream_id}, not pending (${r.status === 'queued' ? 'not read yet' : 'acknowledged'})`;
  if (r.stream_id) return `${r.stream_id}, trimmed (acknowledged, past STREAM_RETENTION)`;
  return r.mode === 'sync' ? 'none (served in the webhook)' : 'none (not recorded)';
}

export function drawRequest(r) {
  const facts = [
    ['status', `${r.status} (${r.mode || '-'}), ${count(int(r.attempts) || 0)} attempt(s)` +
      (int(r.requeues) > 0 ? `, requeued ${count(r.requeues)} time(s)` : '')],
    ['audience', r.audience + (r.test_email ? `, test email ${r.test_email}` : '')],
    r.last_error ? ['last error', r.last_error] : null,
    ['entry', where(r)],
    r.dead_entry ? ['dead entry', `${r.dead_entry.id}: ${r.dead_entry.fields.reason} after ` +
      `${r.dead_entry.fields.attempts} attempt(s)`] : null,
    ['conversation', r.conversation
      ? `${r.conv}, ${r.conversation.stale === '1' ? 'STALE (the bot was removed)' : 'not stale'}`
      : `${r.conv}: no reference stored`],
    ['cards', `ack ${r.ack_activity_id || '-'}, result ${r.result_activity_id || '-'}`],
  ].filter(Boolean);
  byId('request-facts').replaceChildren(...facts.flatMap(([k, v]) =>
    [el('dt', { text: k }), el('dd', { text: v, dataset: { fact: k } })]));
  byId('request-facts').dataset.status = r.status;
  const rows = (r.timeline || []).map((s) => el('tr', { dataset: { step: s.step } },
    td(s.step), td(time(s.at_ms), 'mono'), td(s.after_ms === null ? '' : `+${span(s.after_ms)}`, 'num')));
  byId('timeline').tBodies[0].replaceChildren(...rows);
}
