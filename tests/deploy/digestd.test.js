// digestd.test.js: the built digestd run with deploy/kubernetes's settings (digestd.env, the
// Deployment's args) against a private redis-server: it answers the probes' paths, and the
// stream and group it creates are the ones the ScaledObject watches. Processes are stopped by
// the pids this test holds.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { DIGESTD_BIN, readEnvFile, readText, readYamlDocs } from './lib.js';

const REDIS = process.env.REDIS_BIN || '/usr/bin/redis-server';
const REDIS_CLI = process.env.REDIS_CLI_BIN || '/usr/bin/redis-cli';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await pred()) return;
    } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function status(url) {
  const r = await fetch(url);
  await r.arrayBuffer();
  return r.status;
}

function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 15000);
    child.once('exit', () => { clearTimeout(t); resolve(); });
    child.kill('SIGTERM');
  });
}

test('digestd with the manifests settings: probes answer, the group is the ScaledObject\'s', async (t) => {
  const env = { PATH: process.env.PATH };
  for (const [k, v] of readEnvFile('deploy/kubernetes/digestd.env')) {
    // A TLS file would need a TLS Redis, which this test does not start
    // (tests/integration/test_redis_tls.py does).
    if (k.startsWith('REDIS_TLS_')) continue;
    env[k] = v;
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-test-'));
  const redisPort = await freePort();
  const redis = spawn(REDIS, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', tmp], { stdio: 'ignore' });
  const procs = [];
  t.after(async () => {
    for (const p of procs) await stop(p);
    await stop(redis);
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const cli = (...args) => execFileSync(REDIS_CLI, ['-p', String(redisPort), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  await waitFor(() => cli('PING').trim() === 'PONG', 10000, 'redis-server');

  const docs = ['api.yaml', 'worker.yaml'].flatMap((f) => readYamlDocs(`deploy/kubernetes/${f}`));
  const so = readYamlDocs('deploy/kubernetes/keda.yaml').find((o) => o.kind === 'ScaledObject');
  let metricsText = '';
  for (const d of docs) {
    const c = d.spec.template.spec.containers[0];
    const port = await freePort();
    const child = spawn(DIGESTD_BIN, c.args, {
      env: {
        ...env,
        DIGEST_LISTEN: `127.0.0.1:${port}`, // the manifest's port may be taken here
        REDIS_URL: `redis://127.0.0.1:${redisPort}/0`,
        BOT_AUTH: 'off',
        LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    procs.push(child);
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await status(base + c.readinessProbe.httpGet.path)) === 200, 20000,
      `${d.metadata.name} ready on ${c.readinessProbe.httpGet.path}`);
    assert.equal(await status(base + c.livenessProbe.httpGet.path), 200);
    metricsText = await (await fetch(base + '/metrics')).text();
  }

  // Every digestd metric deploy/prometheus/alerts.yml uses is one this digestd exports.
  const families = new Set([...metricsText.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
  const used = new Set([...readText('deploy/prometheus/alerts.yml').matchAll(/\b(digestd_\w+|process_\w+)/g)]
    .map((m) => m[1].replace(/_(bucket|sum|count)$/, '')));
  assert.ok(used.size >= 6);
  for (const name of used) assert.ok(families.has(name), `alerts.yml: ${name} is exported`);

  // What KEDA will ask (XINFO GROUPS <stream>) names the group the ScaledObject names.
  for (const tr of so.spec.triggers) {
    const groups = cli('XINFO', 'GROUPS', tr.metadata.stream);
    assert.ok(groups.split('\n').includes(tr.metadata.consumerGroup),
      `${tr.metadata.stream} has group ${tr.metadata.consumerGroup}: ${groups}`);
  }
  // And nothing else: every key digestd made carries the prefix's hash tag.
  const keys = cli('--scan').split('\n').filter(Boolean);
  assert.ok(keys.length > 0);
  for (const k of keys) assert.ok(k.startsWith(`{${env.DIGEST_PREFIX}}:`), k);
});
