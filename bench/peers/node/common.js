// What both Node.js peers share: their settings (digestd's variable names),
// the chat command, the Redis step (../enqueue.lua, one EVALSHA), and the
// acknowledgment card, shaped like digestd's (tests/golden/ack.json) so
// digest-bench reads it the same way.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const Redis = require('ioredis');

const env = (name, def) => process.env[name] || def;

const settings = {
  listen: env('DIGEST_LISTEN', '127.0.0.1:3978'),
  redisUrl: env('REDIS_URL', 'redis://127.0.0.1:6379/0'),
  prefix: env('DIGEST_PREFIX', 'digest'),
  appId: env('MICROSOFT_APP_ID', ''),
  appPassword: env('MICROSOFT_APP_PASSWORD', ''),
  tenant: env('MICROSOFT_APP_TENANT_ID', 'botframework.com'),
  openidUrl: env('BOT_OPENID_URL', 'https://login.botframework.com/v1/.well-known/openidconfiguration'),
  tokenUrl: env('BOT_TOKEN_URL', 'https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token'),
  audiences: env('DIGEST_AUDIENCES', 'advisors,c_suite,global').split(','),
  dedupTtl: 86400,
  requestTtl: 604800,
};
settings.tokenUrl = settings.tokenUrl.replace('{tenant}', settings.tenant);

function hostPort(s) {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

// `digest <audience>` after the bot's mention is removed; null otherwise.
function parseCommand(activity) {
  let text = activity.text || '';
  for (const e of activity.entities || []) {
    if (e.type === 'mention' && e.mentioned && e.mentioned.id === activity.recipient.id && e.text) {
      text = text.split(e.text).join('');
    }
  }
  const m = /^digest\s+(\S+)(?:\s+(\S+))?$/i.exec(text.replace(/&nbsp;/g, ' ').trim());
  if (!m || !settings.audiences.includes(m[1].toLowerCase())) return null;
  return { audience: m[1].toLowerCase(), testEmail: m[2] || '' };
}

// options: ioredis's; the hand-optimised peer batches a tick's commands (autopipelining).
function openRedis(options = {}) {
  const redis = new Redis(settings.redisUrl, options);
  redis.defineCommand('enqueue', {
    numberOfKeys: 4,
    lua: fs.readFileSync(path.join(__dirname, '..', 'enqueue.lua'), 'utf8'),
  });
  return redis;
}

// The step digestd takes for a `digest` command: one EVALSHA. Returns the request id.
async function enqueue(redis, activity, cmd) {
  const P = `{${settings.prefix}}`;
  const conv = `${activity.channelId}:${activity.conversation.id}`;
  const rid = crypto.randomUUID();
  const c = activity.conversation, from = activity.from, bot = activity.recipient;
  const tenant = c.tenantId || (activity.channelData && activity.channelData.tenant && activity.channelData.tenant.id) || '';
  const [, id] = await redis.enqueue(
    `${P}:requests`, `${P}:conv:${conv}`, `${P}:dedup:${conv}:${activity.id}`, `${P}:req:${rid}`,
    settings.dedupTtl, settings.requestTtl, rid, cmd.audience, cmd.testEmail, conv, activity.id,
    Date.now(),
    'service_url', activity.serviceUrl, 'channel_id', activity.channelId,
    'conversation_id', c.id, 'conversation_type', c.conversationType || '', 'tenant_id', tenant,
    'bot_id', bot.id, 'bot_name', bot.name || '', 'user_id', from.id, 'user_name', from.name || '',
    'user_aad_id', from.aadObjectId || '', 'activity_id', activity.id, 'locale', activity.locale || '',
    'updated_ms', Date.now(), 'stale', '0');
  return id;
}

async function recordAck(redis, rid, ackId) {
  await redis.hset(`{${settings.prefix}}:req:${rid}`, 'ack_activity_id', ackId);
}

function ackCard(audience, rid) {
  return {
    type: 'AdaptiveCard',
    $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    version: '1.5',
    body: [
      { type: 'TextBlock', text: 'Digest requested', wrap: true, size: 'Medium', weight: 'Bolder' },
      { type: 'FactSet', facts: [{ title: 'Audience', value: audience }, { title: 'Request', value: rid }] },
      {
        type: 'TextBlock', wrap: true,
        text: `I'm preparing the digest and will post it in this conversation when it is ready, usually within a minute. Send "status ${rid}" to check on it.`,
      },
    ],
  };
}

module.exports = { settings, hostPort, parseCommand, openRedis, enqueue, recordAck, ackCard };
