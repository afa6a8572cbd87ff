// world.js: real processes on loopback for the browser test, started and stopped
// by the pids it holds (never by name): a private redis-server, a digest-stub (the
// upstream and everything Microsoft provides), digestd processes wired to them,
// digestctl against the same Redis, and `digest-stub say`, which sends a signed
// activity the way Teams would. The node twin of tests/integration/harness.py.

import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN_DIR = path.dirname(process.env.DIGESTD_BIN || '../../build/digestd');
export const BIN = {
  digestd: process.env.DIGESTD_BIN || path.join(BIN_DIR, 'digestd'),
  digestctl: process.env.DIGESTCTL_BIN || path.join(BIN_DIR, 'digestctl'),
  stub: process.env.DIGEST_STUB_BIN || path.join(BIN_DIR, 'digest-stub'),
  redis: process.env.REDIS_BIN || '/usr/bin/redis-server',
  redisCli: process.env.REDIS_CLI_BIN || '/usr/bin/redis-cli',
};
export const ADMIN_TOKEN = 'browser-test-admin-token-0123456789';
// The api process and digestctl read one WORKER_CLAIM_IDLE_MS, as an operator's shell and the
// deployment would: an entry idle twice this long is stuck. The workers keep the default
// (a minute), so nothing they hold is claimed, or stuck, while the test runs.
export const CLAIM_IDLE_MS = 1000;
const APP_ID = 'c9e8c047-2a74-40a2-b28a-b162d5f5327c';
// TEST_PREFIX (valgrind) wraps digestd as it wraps every program under test.
const PREFIX = (process.env.TEST_PREFIX || '').split(/\s+/).filter(Boolean);

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls pred (sync or async) until it is truthy; its value, or an error naming what.
export async function waitFor(pred, timeoutMs, what, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await pred();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function httpStatus(url) {
  try {
    const res = await fetch(url);
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

// One child process with its output in a log file of dir.
class Proc {
  constructor(name, cmd, args, env, dir) {
    this.name = name;
    this.logPath = path.join(dir, `${name}.log`);
    const out = fs.openSync(this.logPath, 'w');
    this.child = spawn(cmd, args, { env, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, sig) => resolve({ code, sig })));
  }

  get pid() { return this.child.pid; }
  get running() { return this.child.exitCode === null && this.child.signalCode === null; }
  log() { return fs.existsSync(this.logPath) ? fs.readFileSync(this.logPath, 'utf8') : ''; }

  // SIGTERM (or sig), then the exit status; SIGKILL after timeoutMs.
  async stop(sig = 'SIGTERM', timeoutMs = 15000) {
    if (!this.running) return this.exited;
    this.child.kill(sig);
    const t = setTimeout(() => this.running && this.child.kill('SIGKILL'), timeoutMs);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }
}

export class World {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'digestd-browser-'));
    this.procs = [];
    this.seq = 0;
  }

  async start() {
    this.redisPort = await freePort();
    this.redisProc = this.spawn('redis', BIN.redis, ['--port', this.redisPort, '--bind', '127.0.0.1',
      '--save', '', '--appendonly', 'no', '--dir', this.dir], {});
    this.redisUrl = `redis://127.0.0.1:${this.redisPort}/0`;
    this.keyDir = path.join(this.dir, 'keys');
    this.stub = this.spawn('stub', BIN.stub, ['serve', '--listen', '127.0.0.1:0', '--key-dir', this.keyDir,
      '--upstream-delay', '100ms'], {});
    this.stubUrl = await waitFor(() => {
      const m = /^digest-stub listening on (\S+)$/m.exec(this.stub.log());
      return m && m[1];
    }, 30000, 'digest-stub to listen'); // its first key: RSA generation, slow under load
    await waitFor(async () => (await this.ctl('stats')).length !== undefined, 10000, 'redis-server');
    this.api = await this.digestd('api', { ADMIN_TOKEN, WORKER_CLAIM_IDLE_MS: String(CLAIM_IDLE_MS) });
    return this;
  }

  spawn(name, cmd, args, env) {
    const p = new Proc(name, cmd, args.map(String), { ...process.env, ...env }, this.dir);
    this.procs.push(p);
    return p;
  }

  // digestd settings that send everything outside to the stub.
  stubEnv() {
    return {
      SERVICE_URL_ALLOW: '127.0.0.1',
      BOT_AUTH: 'jwt',
      BOT_TOKEN_URL: `${this.stubUrl}/{tenant}/oauth2/v2.0/token`,
      BOT_OPENID_URL: `${this.stubUrl}/v1/.well-known/openidconfiguration`,
      DIGEST_UPSTREAM_URL: `${this.stubUrl}/api/talentwell/digest?audience={audience}`,
      MICROSOFT_APP_ID: APP_ID,
      MICROSOFT_APP_PASSWORD: 'stub-secret',
    };
  }

  // A digestd of role (api, worker), ready; its base URL is .url, its process .proc.
  async digestd(role, env = {}) {
    const port = await freePort();
    const name = `digestd-${role}-${this.procs.length}`;
    const argv = [...PREFIX, BIN.digestd, '--role', role];
    const proc = this.spawn(name, argv[0], argv.slice(1), {
      ...this.stubEnv(), DIGEST_LISTEN: `127.0.0.1:${port}`, REDIS_URL: this.redisUrl,
      LOG_LEVEL: 'info', RETRY_BASE_MS: '50', RETRY_MAX_MS: '200', ...env,
    });
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => {
      if (!proc.running) throw new Error(`${name} exited:\n${proc.log()}`);
      return (await httpStatus(`${url}/readyz`)) === 200;
    }, 20000, `${name} /readyz`);
    return { url, proc, name: `${os.hostname()}:${proc.pid}` };
  }

  // `digestctl ARGS --json`, parsed.
  async ctl(...args) {
    const env = { ...process.env, REDIS_URL: this.redisUrl, WORKER_CLAIM_IDLE_MS: String(CLAIM_IDLE_MS) };
    delete env.DIGEST_PREFIX;
    const { stdout } = await run(BIN.digestctl, [...args, '--json'], { env, timeout: 15000 });
    return JSON.parse(stdout);
  }

  // A user types text in a conversation of its own; the request id digestd answered.
  async say(text = 'digest advisors') {
    this.seq += 1;
    const { stdout } = await run(BIN.stub, ['say', text, '--to', `${this.api.url}/api/messages`,
      '--stub', this.stubUrl, '--key-dir', this.keyDir, '--conversation-id', `browser-conv-${this.seq}`,
      '--id', `browser-activity-${process.pid}-${this.seq}`], { timeout: 30000 });
    const m = /"requestId":"([^"]+)"/.exec(stdout);
    if (!m) throw new Error(`digest-stub say: no request id in ${stdout}`);
    return m[1];
  }

  // One command to this world's Redis (redis-cli), its reply as text.
  async redis(...args) {
    const { stdout } = await run(BIN.redisCli, ['-p', this.redisPort, ...args.map(String)], { timeout: 10000 });
    return stdout.trim();
  }

  // The stub answers the next count upstream requests with status (a final 400: dead at once).
  async inject(target, status, count) {
    const res = await fetch(`${this.stubUrl}/stub/inject`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ target, status, count }),
    });
    if (res.status !== 200) throw new Error(`stub inject: ${res.status}`);
  }

  async statusOf(requestId) {
    return (await this.ctl('show', requestId)).status;
  }

  async stop() {
    const bad = [];
    for (const p of [...this.procs].reverse()) {
      const { code, sig } = await p.stop();
      if (p.name.startsWith('digestd') && p.expectClean !== false && code !== 0) {
        bad.push(`${p.name} exited ${code ?? sig}:\n${p.log()}`);
      }
    }
    if (bad.length === 0) fs.rmSync(this.dir, { recursive: true, force: true });
    return bad;
  }
}
