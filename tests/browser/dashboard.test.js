// dashboard.test.js: the operators' page (GET /admin/) end to end in Debian's
// headless Chromium, driven by playwright-core, against a real digestd (an api
// process and two workers), redis-server and digest-stub (world.js). What the
// page shows is checked against digestctl --json on the same Redis; the
// browser's every request is logged and anything not for 127.0.0.1 is
// refused and counted. Screenshots go to SCREENSHOT_DIR (the build directory).
//
//   DIGESTD_BIN=build/digestd node --test tests/browser/   (ctest -R browser does this)

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

import { ADMIN_TOKEN, CLAIM_IDLE_MS, World, waitFor } from './world.js';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const REFRESH_MS = 3000; // web/app.js
const HEARTBEAT_TTL_MS = 15000; // SPEC §5: three beat periods of 5 s
const SLACK_MS = 2000; // a loaded machine's scheduling, never a speed claim
const SHOTS = process.env.SCREENSHOT_DIR || path.join(os.tmpdir(), 'digestd-browser-shots');

let world;
let killed; // the worker killed -9: {name, at}
let context;
let page;
let userDir;
const consoleErrors = [];
const offsite = [];
const requests = [];

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (scripts/deps.sh)`);
  world = new World(); // assigned first, so that after() stops whatever a failed start left
  await world.start();
  // The one to be killed serves with USE_ASYNC_DIGEST=false: a rollout the processes disagree on.
  world.workers = [await world.digestd('worker', { USE_ASYNC_DIGEST: 'false' }), await world.digestd('worker')];
  userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'digestd-chromium-'));
  context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 800 },
  });
  // Every request the browser makes is logged; one for anywhere but 127.0.0.1 is refused.
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname !== '127.0.0.1') {
      offsite.push(url.href);
      return route.abort('blockedbyclient');
    }
    return route.continue();
  });
  page = context.pages()[0] || (await context.newPage());
  page.on('request', (r) => requests.push({ method: r.method(), url: r.url(), headers: r.headers() }));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') {
      consoleErrors.push({ text: m.text(), url: m.location().url, at: Date.now() });
    }
  });
  page.on('pageerror', (e) => consoleErrors.push({ text: `uncaught: ${e.message}`, url: '', at: Date.now() }));
});

after(async () => {
  if (context) await context.close();
  if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  if (world) {
    const bad = await world.stop();
    assert.deepEqual(bad, [], 'every digestd not killed by the test exits 0');
  }
});

// --- reading the page ----------------------------------------------------------------

const refreshes = async () => Number((await page.getAttribute('body', 'data-refreshes')) || 0);

// Until the page has drawn a refresh that began after this call.
async function nextRefresh() {
  const n = await refreshes();
  await waitFor(async () => (await refreshes()) >= n + 2, 2 * REFRESH_MS + SLACK_MS, 'a refresh of the page');
}

// The integer a [data-stat] element shows ("1,204" -> 1204); null for "-".
async function stat(name) {
  const text = (await page.textContent(`[data-stat="${name}"]`)).trim();
  return text === '-' ? null : Number(text.replace(/,/g, ''));
}

// Until the notice line says what an action just did (a string is matched
// whole). A notice stays up for NOTICE_MS, so the previous action's notice may
// still be showing when this one's answer arrives: wait for this text, not
// merely for a visible notice.
async function noticeSays(expected) {
  const says = (text) => (expected instanceof RegExp ? expected.test(text) : text === expected);
  await waitFor(async () => (await page.isVisible('#notice')) && says(await page.textContent('#notice')),
    SLACK_MS, `the notice ${expected}`).catch(async (err) => {
    assert.fail(`${err.message}; the notice says "${await page.textContent('#notice')}"`);
  });
}

async function procRow(name) {
  return page.$eval(`#procs-table tbody tr[data-name="${name}"]`, (tr) => tr.dataset.state).catch(() => null);
}

const sum = (list, key) => list.reduce((s, x) => s + (x[key] || 0), 0);

// What the tiles show, computed from digestctl stats --json the way the page is meant to.
function expectedTiles(s) {
  return {
    verdict: `verdict: ${s.verdict_text}`,
    length: s.length,
    lag: sum(s.groups, 'lag'),
    pending: sum(s.groups, 'pending'),
    in_flight: sum(s.procs, 'in_flight'),
    concurrency: sum(s.procs, 'concurrency'),
    dead: s.dead,
    hour: s.rates.last_hour,
    procs: s.procs.map((p) => p.name).sort(),
  };
}

// What the tiles show, read in one go (a redraw happens in one task of the page, so this
// never straddles one).
function shownTiles() {
  return page.evaluate(() => {
    const num = (name) => {
      const t = document.querySelector(`[data-stat="${name}"]`).textContent.trim();
      return t === '-' ? null : Number(t.replace(/,/g, ''));
    };
    const hour = {};
    for (const k of ['enqueued', 'delivered', 'failed', 'dead', 'sync', 'fallback']) hour[k] = num(`hour.${k}`);
    const legend = {};
    for (const li of document.querySelectorAll('#legend li')) {
      legend[li.dataset.series] = Number(li.querySelector('.n').textContent.replace(/,/g, ''));
    }
    return {
      verdict: document.getElementById('verdict').textContent.trim(),
      length: num('length'), lag: num('lag'), pending: num('pending'), in_flight: num('in_flight'),
      concurrency: num('concurrency'), dead: num('dead'), hour,
      procs: [...document.querySelectorAll('#procs-table tbody tr[data-state="live"]')]
        .map((r) => r.dataset.name).sort(),
      legend,
    };
  });
}

// Until the page shows what digestctl stats --json says at the same moment (both read
// within one poll, until the page has drawn a refresh of the state digestctl reads). The
// chart's legend sums the history's sixty minutes: the same counts as last_hour.
async function pageShowsStats(what) {
  let last = null;
  try {
    await waitFor(async () => {
      const s = await world.ctl('stats');
      const shown = await shownTiles();
      last = { shown, want: { ...expectedTiles(s), legend: s.rates.last_hour }, stats: s };
      return isDeepStrictEqual(last.shown, last.want);
    }, 2 * REFRESH_MS + SLACK_MS, what, 250);
  } catch (err) {
    if (last) assert.deepEqual(last.shown, last.want, what);
    throw err;
  }
  return last.stats;
}

// --- the tests, in order: they share one world and one page ---------------------------------

test('a wrong token is refused and the right one opens the page', async () => {
  await page.goto(`${world.api.url}/admin/`);
  await page.waitForSelector('#login:not([hidden])');
  await page.fill('#token', 'not-the-admin-token-at-all');
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#login-error:not([hidden])');
  assert.match(await page.textContent('#login-error'), /refused/);
  assert.equal(await page.isVisible('#dashboard'), false);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept');

  await page.fill('#token', ADMIN_TOKEN);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('body[data-refreshes]');
  assert.equal(await page.isVisible('#login'), false);
  assert.match(await page.textContent('#verdict'), /^verdict: /);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('digestd.adminToken')), ADMIN_TOKEN);
  // A reload keeps the tab's token: the page opens without asking again.
  await page.reload();
  await page.waitForSelector('body[data-refreshes]');
  assert.equal(await page.isVisible('#login'), false);
});

test('both workers show as live, then one is killed -9', async () => {
  const [a, b] = world.workers;
  await waitFor(async () => (await procRow(a.name)) === 'live' && (await procRow(b.name)) === 'live',
    2 * REFRESH_MS + SLACK_MS, 'both workers live on the page');
  assert.equal(await page.textContent(`#procs-table tr[data-name="${a.name}"] td:nth-child(3)`), 'worker');
  assert.equal(await page.textContent(`#procs-table tr[data-name="${a.name}"] td:nth-child(9)`), 'sync');
  assert.equal(await page.textContent('#rollout'), 'mixed');
  assert.equal(await page.textContent('#rollout-detail'), '(async × 2, sync × 1)');
  a.proc.expectClean = false;
  await a.proc.stop('SIGKILL');
  killed = { name: a.name, at: Date.now() };
  // Its heartbeat lives up to HEARTBEAT_TTL_MS more: watched from now, while the next tests
  // run; the moment the page first marks it dead is what a later test checks.
  killed.seen = waitFor(async () => (await procRow(a.name)) === 'dead' && Date.now(),
    HEARTBEAT_TTL_MS + REFRESH_MS + SLACK_MS, 'the killed worker marked dead', 200).catch((e) => e);
});

let delivered = []; // request ids of jobs delivered end to end

test("after real jobs the page's numbers equal digestctl stats --json", async () => {
  for (let i = 0; i < 5; i++) delivered.push(await world.say());
  await waitFor(async () => {
    const s = await world.ctl('stats');
    return s.rates.last_hour.delivered === 5 && sum(s.groups, 'pending') === 0;
  }, 20000, 'five jobs delivered');
  const stats = await pageShowsStats('the page to show the stats');
  assert.equal(stats.rates.last_hour.delivered, 5);
  assert.equal(await stat('hour.delivered'), 5);
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'healthy');
  assert.match(await page.getAttribute('#verdict', 'class'), /\bok\b/);
});

test('a dead job appears within one refresh; Requeue puts it back and the page shows it delivered', async () => {
  await world.inject('upstream', 400, 1); // a final failure: dead-lettered at once
  const rid = await world.say();
  await waitFor(async () => (await world.ctl('dead')).entries.some((e) => e.request_id === rid), 15000,
    'the job dead-lettered');
  const seen = Date.now();
  const row = `#dead-table tbody tr[data-request="${rid}"]`;
  await page.waitForSelector(row, { timeout: REFRESH_MS + SLACK_MS });
  assert.ok(Date.now() - seen <= REFRESH_MS + SLACK_MS);
  assert.match(await page.textContent(`${row} td:nth-child(3)`), /HTTP 400/);
  assert.equal(await stat('dead'), 1);

  await page.click(`${row} button[data-requeue]`);
  await noticeSays(new RegExp(`^Requeued ${rid} as stream entry \\d+-\\d+; its timeline is open below\\.$`));
  // The requeued job's timeline opens and follows it to delivered.
  assert.equal(await page.textContent('#request-id'), rid);
  await page.waitForSelector('#request-facts[data-status="delivered"]', { timeout: 15000 });
  const steps = await page.$$eval('#timeline tbody tr', (rows) => rows.map((r) => r.dataset.step));
  assert.ok(steps.includes('requeued'), steps.join(' '));
  assert.equal(steps.at(-1), 'delivered', steps.join(' '));
  const show = await world.ctl('show', rid);
  assert.equal(show.status, 'delivered');
  assert.equal(show.requeues, '1');
  await page.waitForSelector(row, { state: 'detached', timeout: REFRESH_MS + SLACK_MS });
  await page.waitForSelector('#dead-empty:not([hidden])', { timeout: REFRESH_MS + SLACK_MS });
  delivered.push(rid);
});

test('Requeue all asks with the count seen and requeues exactly those', async () => {
  await world.inject('upstream', 400, 2);
  const rids = [await world.say(), await world.say()];
  await waitFor(async () => (await world.ctl('dead')).count === 2, 15000, 'two jobs dead-lettered');
  await waitFor(async () => (await stat('dead')) === 2 && (await page.isEnabled('#requeue-all')),
    REFRESH_MS + SLACK_MS, 'two dead on the page');
  await page.click('#requeue-all');
  await page.waitForSelector('#confirm-all[open]');
  assert.equal(await page.textContent('#confirm-text'), 'Requeue all 2 dead jobs?');
  // Cancel changes nothing.
  await page.click('#confirm-cancel');
  assert.equal((await world.ctl('dead')).count, 2);
  await page.click('#requeue-all');
  await page.click('#confirm-ok');
  await noticeSays('Requeued 2 dead job(s).');
  await waitFor(async () => (await Promise.all(rids.map((r) => world.statusOf(r)))).every((s) => s === 'delivered'),
    15000, 'both requeued jobs delivered');
  await page.waitForSelector('#dead-empty:not([hidden])', { timeout: REFRESH_MS + SLACK_MS });
  delivered.push(...rids);
});

test('the request-id search shows the timeline digestctl show gives', async () => {
  const rid = delivered[0];
  await page.fill('#search-id', rid);
  await page.press('#search-id', 'Enter');
  await page.waitForSelector('#request-facts[data-status="delivered"]');
  assert.equal(await page.textContent('#request-id'), rid);
  const show = await world.ctl('show', rid);
  const rows = await page.$$eval('#timeline tbody tr', (trs) => trs.map((tr) =>
    [tr.dataset.step, tr.children[1].textContent]));
  assert.deepEqual(rows, show.timeline.map((s) => [s.step, new Date(s.at_ms).toISOString().replace('T', ' ')]));
  assert.deepEqual(rows.map((r) => r[0]), ['queued', 'processing', 'fetched', 'delivered']);
  assert.match(await page.textContent('[data-fact="status"]'), /^delivered \(async\), 1 attempt\(s\)$/);
  // An id with no record says so.
  await page.fill('#search-id', '00000000-0000-4000-8000-000000000000');
  await page.press('#search-id', 'Enter');
  await page.waitForSelector('#request-missing:not([hidden])');
  assert.match(await page.textContent('#request-missing'), /^No request 00000000-/);
});

test('the killed worker shows as dead within one heartbeat TTL', async () => {
  const seen = await killed.seen;
  if (seen instanceof Error) throw seen;
  assert.ok(seen - killed.at <= HEARTBEAT_TTL_MS + REFRESH_MS + SLACK_MS, `${seen - killed.at}ms`);
  assert.equal(await procRow(killed.name), 'dead');
  const procs = await world.ctl('procs');
  assert.ok(procs.dead_consumers.some((d) => d.name === killed.name));
  assert.ok(!procs.procs.some((p) => p.name === killed.name));
  assert.match(await page.textContent('#procs-count'), /^2 live, 1 dead$/);
  // With it gone, the live processes agree again.
  assert.equal(await page.textContent('#rollout'), 'async');
  assert.equal(await page.textContent('#rollout-detail'), '(USE_ASYNC_DIGEST=true, 2 processes)');
});

test('a screenshot after the run: a dead letter waiting, its request open', async () => {
  await world.inject('upstream', 400, 1);
  const rid = await world.say();
  await page.waitForSelector(`#dead-table tbody tr[data-request="${rid}"]`, { timeout: 15000 });
  await page.click(`#dead-table tbody tr[data-request="${rid}"] button.link`);
  await page.waitForSelector('#request-facts[data-status="failed"]');
  await page.mouse.move(0, 0); // no hover band in the picture
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, 'dashboard.png'), fullPage: true });
});

test('a pending entry idle past twice the claim idle time is highlighted, and the verdict is stuck',
  async () => {
    // An entry read by a consumer that never was a process (no heartbeat), in one script so that
    // the live worker, blocked on the stream, never sees it unread.
    const id = await world.redis('EVAL', "local id = redis.call('XADD', KEYS[1], '*', 'request_id', " +
      "'ghost-request') redis.call('XREADGROUP', 'GROUP', 'workers', 'ghost:1', 'COUNT', 1, " +
      "'STREAMS', KEYS[1], '>') return id", 1, '{digest}:requests');
    const row = `#pending-table tbody tr[data-id="${id}"]`;
    await page.waitForSelector(row, { timeout: REFRESH_MS + SLACK_MS });
    await page.waitForSelector(`${row}[data-stuck="yes"]`, { timeout: 2 * CLAIM_IDLE_MS + REFRESH_MS + SLACK_MS });
    assert.match(await page.getAttribute(row, 'class'), /\bstuck\b/);
    assert.match(await page.textContent(`${row} td:nth-child(4)`), /none \(dead\).*stuck/);
    await waitFor(async () => (await page.getAttribute('#verdict', 'data-verdict')) === 'stuck',
      REFRESH_MS + SLACK_MS, 'the stuck verdict');
    const s = await world.ctl('stats');
    assert.equal(s.verdict, 'stuck');
    assert.equal(s.stuck.id, id);
    assert.match(await page.textContent('#verdict'), /^verdict: stuck: oldest pending \d/);
    assert.match(await page.getAttribute('#verdict', 'class'), /\bbad\b/);
    assert.match(await page.textContent('#pending-sub'), /^stuck: idle .* under ghost:1$/);
  });

test('with no worker left a backlog builds, and the page shows it as digestctl does', async () => {
  const [, b] = world.workers;
  assert.equal((await b.proc.stop()).code, 0);
  await world.say();
  await world.say();
  const stats = await pageShowsStats('the page to show the backlog');
  assert.equal(stats.verdict, 'no consumers');
  assert.equal(sum(stats.groups, 'lag'), 2);
  assert.equal(sum(stats.groups, 'pending'), 1); // the ghost's entry of the last test
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'no consumers');
  // The worker that left cleanly took its heartbeat and its consumer along: not listed at all,
  // while the killed one's consumer and the ghost's stay, dead.
  assert.equal(await procRow(b.name), null);
  const dead = await page.$$eval('#procs-table tbody tr[data-state="dead"]', (rows) => rows.map((r) => r.dataset.name));
  assert.deepEqual(dead.sort(), [killed.name, 'ghost:1'].sort());
  assert.equal(await page.textContent('#procs-count'), '1 live, 2 dead');
});

test('readable at phone width and in dark mode', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const [scrollWidth, innerWidth] = await page.evaluate(() =>
    [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(scrollWidth <= innerWidth, `the page is ${scrollWidth}px wide in a ${innerWidth}px window`);
  await page.screenshot({ path: path.join(SHOTS, 'dashboard-phone.png'), fullPage: true });
  const light = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.setViewportSize({ width: 1280, height: 800 });
  const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(dark, light);
  await page.screenshot({ path: path.join(SHOTS, 'dashboard-dark.png'), fullPage: true });
  await page.emulateMedia({ colorScheme: 'light' });
});

let redisGone = Infinity; // when the last test but one killed Redis

test('Redis gone: the page says so and keeps the last numbers, dimmed', async () => {
  const length = await stat('length');
  await world.redisProc.stop('SIGKILL');
  redisGone = Date.now();
  await page.waitForSelector('#problem:not([hidden])', { timeout: REFRESH_MS + SLACK_MS });
  assert.match(await page.textContent('#problem'), /^digestd answered 503: Redis is unreachable/);
  assert.match(await page.getAttribute('#dashboard', 'class'), /\bstale\b/);
  assert.equal(await stat('length'), length);
  assert.equal(await page.isVisible('#login'), false, 'the token is kept: it was not refused');
});

test('no console errors, no request beyond 127.0.0.1, the token only in a header', async () => {
  // The answers the tests asked for are the only failures the browser may log: the refused
  // token, the unknown request id, and the 503s once Redis was gone.
  const expected = [
    (e) => /status of 401/.test(e.text) && /\/admin\/queue$/.test(e.url),
    (e) => /status of 404/.test(e.text) && /\/admin\/requests\/00000000-0000-4000-8000-000000000000$/.test(e.url),
    (e) => /status of 503/.test(e.text) && /\/admin\/[a-z]/.test(e.url) && e.at >= redisGone,
  ];
  const unexpected = consoleErrors.filter((e) => !(/^Failed to load resource: the server responded with a status/
    .test(e.text) && expected.some((ok) => ok(e))));
  assert.deepEqual(unexpected, []);
  assert.deepEqual(offsite, []);
  assert.ok(requests.length > 20, `${requests.length} requests logged`);
  for (const r of requests) {
    assert.equal(new URL(r.url).hostname, '127.0.0.1', r.url);
    assert.ok(!r.url.includes(ADMIN_TOKEN), `the token in a URL: ${r.url}`);
  }
  const json = requests.filter((r) => /\/admin\/(queue|procs|pending|dead|history|requests)/.test(r.url));
  assert.ok(json.length > 10);
  assert.ok(json.filter((r) => r.headers.authorization === `Bearer ${ADMIN_TOKEN}`).length >= json.length - 1,
    'every JSON call but the refused one carries the token as a Bearer header');
  const assets = requests.filter((r) => !json.includes(r));
  assert.ok(assets.every((r) => !r.headers.authorization), 'the page and its files load without it');
  assert.deepEqual(await context.cookies(), []);
});
