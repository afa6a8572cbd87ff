// The same bot written by hand on node:http (libuv + llhttp underneath, like
// digestd, so the difference to digestd is what C buys): the channel's JWT
// verified with jose against keys fetched once from BOT_OPENID_URL (kid,
// RS256/384/512, iss, aud, exp/nbf with 300 s of skew, the key's
// endorsements, the serviceurl claim), the Redis step of SPEC §3 in one
// EVALSHA (../enqueue.lua, ioredis autopipelining), 202 {"requestId"} at
// once, then the acknowledgment card posted to the connector on keep-alive
// connections with a cached client-credentials token, and its id recorded.
'use strict';
const http = require('node:http');
const jose = require('jose');
const { settings, hostPort, parseCommand, openRedis, enqueue, recordAck, ackCard } = require('./common');

const ISSUER = 'https://api.botframework.com';
const ALGS = ['RS256', 'RS384', 'RS512'];
const MAX_BODY = 262144;
const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
const redis = openRedis({ enableAutoPipelining: true });
const keys = new Map(); // kid -> { key, endorsements }

async function getJson(url, init) {
  const res = await fetch(url, init);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

async function loadKeys() {
  const meta = await getJson(settings.openidUrl);
  const set = await getJson(meta.jwks_uri);
  for (const jwk of set.keys) {
    if (jwk.kty !== 'RSA' || !jwk.kid) continue;
    keys.set(jwk.kid, { key: await jose.importJWK({ kty: jwk.kty, n: jwk.n, e: jwk.e }, 'RS256'), endorsements: jwk.endorsements });
  }
}

// null when the token is good for this activity, else the status to answer.
async function checkToken(header, activity) {
  const m = /^Bearer (\S+)$/i.exec(header || '');
  if (!m) return 401;
  let payload, kid;
  try {
    kid = jose.decodeProtectedHeader(m[1]).kid;
    const k = keys.get(kid);
    if (!k) return 401;
    ({ payload } = await jose.jwtVerify(m[1], k.key, { issuer: ISSUER, audience: settings.appId, algorithms: ALGS, clockTolerance: 300 }));
    if (Array.isArray(k.endorsements) && !k.endorsements.includes(activity.channelId)) return 403;
  } catch {
    return 401;
  }
  return payload.serviceurl === activity.serviceUrl ? null : 401;
}

let token = null;
let tokenExpiresMs = 0;
let tokenFetch = null;

// One fetch at a time however many sends wait; reused until 5 minutes before it expires.
function botToken() {
  if (token && Date.now() < tokenExpiresMs) return Promise.resolve(token);
  if (!tokenFetch) {
    const body = new URLSearchParams({
      grant_type: 'client_credentials', client_id: settings.appId, client_secret: settings.appPassword,
      scope: 'https://api.botframework.com/.default',
    });
    tokenFetch = getJson(settings.tokenUrl, { method: 'POST', body }).then((t) => {
      token = t.access_token;
      tokenExpiresMs = Date.now() + (t.expires_in - 300) * 1000;
      tokenFetch = null;
      return token;
    }, (e) => { tokenFetch = null; throw e; });
  }
  return tokenFetch;
}

function post(url, bearer, obj) {
  const body = JSON.stringify(obj);
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Authorization: `Bearer ${bearer}` },
    }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { data += c; });
      res.on('end', () => (res.statusCode >= 200 && res.statusCode < 300 ? resolve(JSON.parse(data)) : reject(new Error(`connector: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// A reply to the user's activity, as every bot card is.
async function sendAck(activity, cmd, rid) {
  const url = `${activity.serviceUrl}v3/conversations/${encodeURIComponent(activity.conversation.id)}/activities/${encodeURIComponent(activity.id)}`;
  const reply = {
    type: 'message', from: activity.recipient, recipient: activity.from,
    conversation: { id: activity.conversation.id }, replyToId: activity.id,
    attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: ackCard(cmd.audience, rid) }],
  };
  const sent = await post(url, await botToken(), reply);
  await recordAck(redis, rid, sent.id);
}

function answer(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const REQUIRED = [['type'], ['id'], ['serviceUrl'], ['conversation', 'id'], ['from', 'id'], ['recipient', 'id']];

async function handle(req, res, raw) {
  let activity;
  try {
    activity = JSON.parse(raw);
  } catch {
    return answer(res, 400, { error: { code: 'bad_request', message: 'body is not JSON' } });
  }
  if (!activity || typeof activity !== 'object' || REQUIRED.some((p) => typeof p.reduce((o, k) => (o && o[k]), activity) !== 'string')) {
    return answer(res, 400, { error: { code: 'bad_request', message: 'missing field' } });
  }
  const bad = await checkToken(req.headers.authorization, activity);
  if (bad) return answer(res, bad, { error: { code: 'unauthorized', message: 'token refused' } });
  const cmd = activity.type === 'message' ? parseCommand(activity) : null;
  if (!cmd) return answer(res, 200, {});
  const rid = await enqueue(redis, activity, cmd);
  answer(res, 202, { requestId: rid });
  sendAck(activity, cmd, rid).catch((e) => console.error(`ack for ${rid}: ${e.message}`));
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return answer(res, 200, { status: 'ok' });
  if (req.method !== 'POST' || req.url !== '/api/messages') return answer(res, 404, { error: { code: 'not_found', message: 'no such route' } });
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) req.destroy();
    else chunks.push(c);
  });
  req.on('end', () => {
    handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((e) => {
      console.error(e);
      if (!res.headersSent) answer(res, 503, { error: { code: 'unavailable', message: e.message } });
    });
  });
});
server.keepAliveTimeout = 60000;

loadKeys().then(() => {
  const { host, port } = hostPort(settings.listen);
  server.listen(port, host, () => console.log(`node:http peer listening on http://${host}:${port} (${keys.size} keys)`));
}, (e) => {
  console.error(`cannot load the signing keys: ${e.message}`);
  process.exit(1);
});
