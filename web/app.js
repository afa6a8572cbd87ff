// app.js: the operators' page. Asks once for the admin token (kept in this tab's
// sessionStorage, sent only as a Bearer header by api.js), then redraws every
// REFRESH_MS from the admin routes — the same answers digestctl --json prints —
// and carries out the two repairs: requeue one dead job, or all of them after a
// confirmation that names the count the operator saw.

import { Api, ApiError } from './api.js';
import { SERIES, drawHistory, totals } from './chart.js';
import { byId, el, show } from './dom.js';
import { count, span } from './format.js';
import { drawDead, drawPending, drawProcs, drawQueue, drawRequest } from './views.js';

const REFRESH_MS = 3000;
const LIST_LIMIT = 20; // pending and dead entries shown, as digestctl's default --limit
const HISTORY_MINUTES = 60;
const TOKEN_KEY = 'digestd.adminToken';
const NOTICE_MS = 20000;

const state = {
  api: null,
  timer: 0,
  busy: false,
  again: false, // a refresh was asked for while one was under way
  refreshes: 0,
  updatedAt: 0,
  request: null, // the request id whose timeline is open
  deadSeen: 0, // the dead count last shown: what "Requeue all" confirms
  noticeTimer: 0,
  minutes: null, // the last history drawn, redrawn when the window changes size
};

// --- token ---------------------------------------------------------------------------

function showLogin(message) {
  show(byId('dashboard'), false);
  show(byId('search'), false);
  show(byId('forget'), false);
  show(byId('login'), true);
  byId('updated').textContent = '';
  const err = byId('login-error');
  err.textContent = message || '';
  show(err, Boolean(message));
  byId('token').focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  const input = byId('token');
  const token = input.value.trim();
  const api = new Api(token);
  try {
    await api.queue(); // the token is checked before anything is kept
  } catch (err) {
    showLogin(err.status === 401 ? 'digestd refused that token.'
      : `digestd could not check the token: ${err.message}`);
    return;
  }
  input.value = '';
  sessionStorage.setItem(TOKEN_KEY, token);
  start(api);
}

function forget(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.api = null;
  clearTimeout(state.timer);
  showLogin(message);
}

function start(api) {
  state.api = api;
  show(byId('login'), false);
  show(byId('dashboard'), true);
  show(byId('search'), true);
  show(byId('forget'), true);
  refresh();
}

// --- refreshing ------------------------------------------------------------------------

function problem(message) {
  byId('problem').textContent = message || '';
  show(byId('problem'), Boolean(message));
  byId('dashboard').classList.toggle('stale', Boolean(message));
}

function notice(message) {
  clearTimeout(state.noticeTimer);
  byId('notice').textContent = message;
  show(byId('notice'), true);
  state.noticeTimer = setTimeout(() => show(byId('notice'), false), NOTICE_MS);
}

// What went wrong, said once on the page; the next refresh tries again.
function failed(err) {
  if (!(err instanceof ApiError)) throw err;
  if (err.status === 401) {
    forget('digestd refused the token (has ADMIN_TOKEN changed?).');
  } else if (err.status === 0) {
    problem(`digestd did not answer; trying again every ${span(REFRESH_MS)}.`);
  } else {
    problem(`digestd answered ${err.status}: ${err.message}`);
  }
}

// The open request's record ({id, record}, or {id, missing} when there is none), null when
// none is open. The id goes along: another may have been opened by the time it is drawn.
async function fetchRequest(api) {
  const id = state.request;
  if (!id) return null;
  try {
    return { id, record: await api.request(id) };
  } catch (err) {
    if (err.status === 404) return { id, missing: true };
    throw err;
  }
}

function drawLegend(minutes) {
  const t = totals(minutes);
  byId('legend').replaceChildren(...SERIES.map((k) =>
    el('li', { class: `s-${k}`, dataset: { series: k } },
      el('span', {}, `${k} `, el('span', { class: 'n', text: count(t[k]) })))));
}

function drawOpenRequest(r) {
  if (!r || r.id !== state.request) return;
  show(byId('request-missing'), Boolean(r.missing));
  show(byId('request-body'), !r.missing);
  if (r.missing) {
    byId('request-missing').textContent =
      `No request ${r.id} (an audit record expires after REQUEST_TTL_S).`;
  } else {
    drawRequest(r.record);
  }
}

const actions = { show: openRequest, requeue };

async function refresh() {
  const api = state.api;
  if (!api) return;
  if (state.busy) {
    state.again = true;
    return;
  }
  clearTimeout(state.timer);
  state.busy = true;
  try {
    const [q, p, pend, dead, hist, req] = await Promise.all([
      api.queue(), api.procs(), api.pending(LIST_LIMIT), api.dead(LIST_LIMIT),
      api.history(HISTORY_MINUTES), fetchRequest(api)]);
    if (api !== state.api) return; // the token was forgotten meanwhile
    drawQueue(q);
    drawProcs(p);
    drawPending(pend, q.stuck_after_ms, actions);
    drawDead(dead, actions);
    state.deadSeen = dead.count;
    state.minutes = hist.minutes;
    drawHistory(byId('chart'), hist.minutes);
    drawLegend(hist.minutes);
    drawOpenRequest(req);
    problem(null);
    state.refreshes += 1;
    state.updatedAt = Date.now();
    document.body.dataset.refreshes = String(state.refreshes);
    tick();
  } catch (err) {
    failed(err);
  } finally {
    state.busy = false;
    if (state.api && document.visibilityState !== 'hidden') {
      state.timer = setTimeout(refresh, state.again ? 0 : REFRESH_MS);
      state.again = false;
    }
  }
}

function tick() {
  if (!state.api || !state.updatedAt) return;
  const age = Date.now() - state.updatedAt;
  byId('updated').textContent =
    `updated ${age < 1000 ? 'just now' : `${span(age)} ago`} · every ${span(REFRESH_MS)}`;
}

// --- actions --------------------------------------------------------------------------

function openRequest(id) {
  state.request = id;
  byId('search-id').value = id;
  byId('request-id').textContent = id;
  byId('request-facts').replaceChildren();
  byId('timeline').tBodies[0].replaceChildren();
  show(byId('request'), true);
  byId('request').scrollIntoView({ block: 'nearest' });
  refresh();
}

function onSearch(ev) {
  ev.preventDefault();
  const id = byId('search-id').value.trim();
  if (id) openRequest(id);
}

async function requeue(id, button) {
  button.disabled = true;
  try {
    const r = await state.api.requeue(id);
    notice(`Requeued ${id} as stream entry ${r.streamId}; its timeline is open below.`);
    openRequest(id);
  } catch (err) {
    if (err.status === 404) notice(`${id} is not dead any more.`);
    else failed(err);
    refresh();
  }
}

function askRequeueAll() {
  const n = state.deadSeen;
  byId('confirm-text').textContent = `Requeue all ${count(n)} dead job${n === 1 ? '' : 's'}?`;
  byId('confirm-ok').dataset.count = String(n);
  byId('confirm-all').showModal();
}

async function requeueAll() {
  const n = Number(byId('confirm-ok').dataset.count);
  byId('confirm-all').close();
  try {
    const r = await state.api.requeueAll(n);
    notice(`Requeued ${count(r.requeued)} dead job(s).`);
  } catch (err) {
    if (err.status === 409) notice(`Nothing requeued: ${err.message}.`);
    else failed(err);
  }
  refresh();
}

// --- start --------------------------------------------------------------------------------

function init() {
  byId('login-form').addEventListener('submit', onLogin);
  byId('search').addEventListener('submit', onSearch);
  byId('forget').addEventListener('click', () => forget(null));
  byId('request-close').addEventListener('click', () => {
    state.request = null;
    show(byId('request'), false);
  });
  byId('requeue-all').addEventListener('click', askRequeueAll);
  byId('confirm-cancel').addEventListener('click', () => byId('confirm-all').close());
  byId('confirm-ok').addEventListener('click', requeueAll);
  // A hidden tab asks nothing; back in view, it catches up at once.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') refresh();
    else clearTimeout(state.timer);
  });
  window.addEventListener('resize', () => state.minutes && drawHistory(byId('chart'), state.minutes));
  setInterval(tick, 1000);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) start(new Api(token));
  else showLogin(null);
}

init();
