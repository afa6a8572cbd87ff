// The bot as Microsoft's Bot Framework SDK for JavaScript builds it
// (botbuilder 4.23, CloudAdapter, an ActivityHandler, express, as the SDK's
// samples do), doing digestd's work for `digest <audience>`: the SDK checks
// the channel's JWT against the keys behind BOT_OPENID_URL, the bot takes
// the Redis step of SPEC §3 (one EVALSHA, ../enqueue.lua) and sends the
// acknowledgment card with context.sendActivity, whose token MSAL fetches
// from BOT_TOKEN_URL. MSAL is given the token endpoint's metadata and the
// authority as a known one, so it never asks Microsoft's instance discovery
// (no network call), and an http token endpoint on loopback is accepted.
// The turn (card included) finishes before the webhook is answered, as in
// the SDK: the answer is 200 with no body.
'use strict';
const express = require('express');
const msal = require('@azure/msal-node');
const {
  ActivityHandler, CardFactory, CloudAdapter, ConfigurationBotFrameworkAuthentication, MessageFactory,
} = require('botbuilder');
const { AuthenticationConstants, MsalServiceClientCredentialsFactory } = require('botframework-connector');
const { CallerIdConstants } = require('botframework-schema');
const { settings, hostPort, parseCommand, openRedis, enqueue, recordAck, ackCard } = require('./common');

// MSAL needs an https authority; with knownAuthorities and authorityMetadata it trusts this one as given.
function credentialsFactory() {
  const token = new URL(settings.tokenUrl);
  const authority = `https://${token.host}/${settings.tenant}`;
  const base = `${token.protocol}//${token.host}/${settings.tenant}`;
  const app = new msal.ConfidentialClientApplication({
    auth: {
      clientId: settings.appId,
      clientSecret: settings.appPassword,
      authority,
      knownAuthorities: [token.host],
      authorityMetadata: JSON.stringify({
        token_endpoint: settings.tokenUrl,
        issuer: `${authority}/v2.0`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        jwks_uri: `${base}/discovery/v2.0/keys`,
      }),
    },
  });
  return new MsalServiceClientCredentialsFactory(settings.appId, app);
}

const auth = new ConfigurationBotFrameworkAuthentication(
  // The public cloud's settings, but the keys' URL (given one, the SDK wants them all).
  {
    MicrosoftAppId: settings.appId,
    MicrosoftAppType: 'MultiTenant',
    ValidateAuthority: true,
    ToChannelFromBotLoginUrl: AuthenticationConstants.ToChannelFromBotLoginUrl,
    ToChannelFromBotOAuthScope: AuthenticationConstants.ToChannelFromBotOAuthScope,
    ToBotFromChannelTokenIssuer: AuthenticationConstants.ToBotFromChannelTokenIssuer,
    OAuthUrl: AuthenticationConstants.OAuthUrl,
    ToBotFromChannelOpenIdMetadataUrl: settings.openidUrl,
    ToBotFromEmulatorOpenIdMetadataUrl: AuthenticationConstants.ToBotFromEmulatorOpenIdMetadataUrl,
    CallerId: CallerIdConstants.PublicAzureChannel,
  },
  credentialsFactory());
const adapter = new CloudAdapter(auth);
adapter.onTurnError = async (context, error) => {
  console.error(`turn error: ${error.stack || error}`);
};

const redis = openRedis();

class DigestBot extends ActivityHandler {
  constructor() {
    super();
    this.onMessage(async (context, next) => {
      const cmd = parseCommand(context.activity);
      if (cmd) {
        const rid = await enqueue(redis, context.activity, cmd);
        const sent = await context.sendActivity(MessageFactory.attachment(CardFactory.adaptiveCard(ackCard(cmd.audience, rid))));
        await recordAck(redis, rid, sent.id);
      }
      await next();
    });
  }
}
const bot = new DigestBot();

const app = express();
app.use(express.json({ limit: '256kb' }));
app.post('/api/messages', (req, res) => adapter.process(req, res, (context) => bot.run(context)));
app.get('/healthz', (req, res) => res.json({ status: 'ok' }));

const { host, port } = hostPort(settings.listen);
app.listen(port, host, () => console.log(`botbuilder peer listening on http://${host}:${port}`));
