"""The same bot as the stack digestd replaces builds it: FastAPI on uvicorn,
redis.asyncio, PyJWT, httpx (all from Debian 12's packages). It checks the
channel's JWT with PyJWT against keys fetched at start from BOT_OPENID_URL
(kid, RS256/384/512, iss, aud, exp/nbf with 300 s of skew, the key's
endorsements, the serviceurl claim), takes the Redis step of SPEC §3 in one
EVALSHA (../enqueue.lua), answers 202 {"requestId"}, and then, as a
FastAPI background task, posts the acknowledgment card to the connector with
a cached client-credentials token (httpx, keep-alive) and records its id.

Run: python3 -m uvicorn app:app --app-dir bench/peers/fastapi --host H --port P
(settings are digestd's variable names, read from the environment)."""
import asyncio
import json
import os
import re
import time
import uuid
from urllib.parse import quote

import httpx
import jwt
import redis.asyncio as aioredis
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse

HERE = os.path.dirname(os.path.abspath(__file__))
ISSUER = "https://api.botframework.com"
ALGS = ["RS256", "RS384", "RS512"]
APP_ID = os.environ.get("MICROSOFT_APP_ID", "")
APP_PASSWORD = os.environ.get("MICROSOFT_APP_PASSWORD", "")
TENANT = os.environ.get("MICROSOFT_APP_TENANT_ID", "botframework.com")
OPENID_URL = os.environ.get("BOT_OPENID_URL",
                            "https://login.botframework.com/v1/.well-known/openidconfiguration")
TOKEN_URL = os.environ.get("BOT_TOKEN_URL",
                           "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
                           ).replace("{tenant}", TENANT)
PREFIX = "{%s}" % os.environ.get("DIGEST_PREFIX", "digest")
AUDIENCES = os.environ.get("DIGEST_AUDIENCES", "advisors,c_suite,global").split(",")
DEDUP_TTL, REQUEST_TTL = 86400, 604800
COMMAND = re.compile(r"^digest\s+(\S+)(?:\s+(\S+))?$", re.I)

app = FastAPI()
state = {"keys": {}, "token": None, "token_expires": 0.0, "token_lock": asyncio.Lock()}


@app.on_event("startup")
async def startup():
    state["http"] = httpx.AsyncClient(limits=httpx.Limits(max_connections=512,
                                                          max_keepalive_connections=512))
    meta = (await state["http"].get(OPENID_URL)).json()
    for jwk in (await state["http"].get(meta["jwks_uri"])).json()["keys"]:
        if jwk.get("kty") == "RSA" and jwk.get("kid"):
            state["keys"][jwk["kid"]] = (jwt.PyJWK(jwk, "RS256").key, jwk.get("endorsements"))
    state["redis"] = aioredis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    with open(os.path.join(HERE, "..", "enqueue.lua")) as f:
        state["enqueue"] = state["redis"].register_script(f.read())


def check_token(header, activity):
    """None when the token is good for this activity, else the status to answer."""
    m = re.match(r"^Bearer (\S+)$", header or "", re.I)
    if not m:
        return 401
    try:
        key = state["keys"].get(jwt.get_unverified_header(m.group(1)).get("kid"))
        if key is None:
            return 401
        claims = jwt.decode(m.group(1), key[0], algorithms=ALGS, audience=APP_ID, issuer=ISSUER,
                            leeway=300, options={"require": ["exp"]})
    except jwt.PyJWTError:
        return 401
    if isinstance(key[1], list) and activity.get("channelId") not in key[1]:
        return 403
    return None if claims.get("serviceurl") == activity.get("serviceUrl") else 401


def parse_command(activity):
    text = activity.get("text") or ""
    for e in activity.get("entities") or []:
        if (e.get("type") == "mention" and (e.get("mentioned") or {}).get("id") ==
                activity["recipient"]["id"] and e.get("text")):
            text = text.replace(e["text"], "")
    m = COMMAND.match(text.replace("&nbsp;", " ").strip())
    if not m or m.group(1).lower() not in AUDIENCES:
        return None
    return m.group(1).lower(), m.group(2) or ""


async def enqueue(activity, audience, test_email):
    conv = "%s:%s" % (activity["channelId"], activity["conversation"]["id"])
    rid = str(uuid.uuid4())
    c, frm, bot = activity["conversation"], activity["from"], activity["recipient"]
    tenant = c.get("tenantId") or ((activity.get("channelData") or {}).get("tenant") or {}).get("id", "")
    now = int(time.time() * 1000)
    ref = ["service_url", activity["serviceUrl"], "channel_id", activity["channelId"],
           "conversation_id", c["id"], "conversation_type", c.get("conversationType", ""),
           "tenant_id", tenant, "bot_id", bot["id"], "bot_name", bot.get("name", ""),
           "user_id", frm["id"], "user_name", frm.get("name", ""),
           "user_aad_id", frm.get("aadObjectId", ""), "activity_id", activity["id"],
           "locale", activity.get("locale", ""), "updated_ms", now, "stale", "0"]
    _, first = await state["enqueue"](
        keys=[PREFIX + ":requests", "%s:conv:%s" % (PREFIX, conv),
              "%s:dedup:%s:%s" % (PREFIX, conv, activity["id"]), "%s:req:%s" % (PREFIX, rid)],
        args=[DEDUP_TTL, REQUEST_TTL, rid, audience, test_email, conv, activity["id"], now] + ref)
    return first.decode() if isinstance(first, bytes) else first


async def bot_token():
    """One fetch at a time; reused until 5 minutes before it expires."""
    async with state["token_lock"]:
        if state["token"] is None or time.monotonic() >= state["token_expires"]:
            r = await state["http"].post(TOKEN_URL, data={
                "grant_type": "client_credentials", "client_id": APP_ID,
                "client_secret": APP_PASSWORD, "scope": "https://api.botframework.com/.default"})
            r.raise_for_status()
            t = r.json()
            state["token"] = t["access_token"]
            state["token_expires"] = time.monotonic() + t["expires_in"] - 300
        return state["token"]


def ack_card(audience, rid):
    return {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": "1.5", "body": [
                {"type": "TextBlock", "text": "Digest requested", "wrap": True, "size": "Medium",
                 "weight": "Bolder"},
                {"type": "FactSet", "facts": [{"title": "Audience", "value": audience},
                                              {"title": "Request", "value": rid}]},
                {"type": "TextBlock", "wrap": True,
                 "text": "I'm preparing the digest and will post it in this conversation when it "
                         "is ready, usually within a minute. Send \"status %s\" to check on it."
                         % rid}]}


async def send_ack(activity, audience, rid):
    """A reply to the user's activity, then the ack's id on the audit record."""
    url = "%sv3/conversations/%s/activities/%s" % (
        activity["serviceUrl"], quote(activity["conversation"]["id"], safe=""),
        quote(activity["id"], safe=""))
    reply = {"type": "message", "from": activity["recipient"], "recipient": activity["from"],
             "conversation": {"id": activity["conversation"]["id"]}, "replyToId": activity["id"],
             "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                              "content": ack_card(audience, rid)}]}
    r = await state["http"].post(url, json=reply,
                                 headers={"Authorization": "Bearer " + await bot_token()})
    r.raise_for_status()
    await state["redis"].hset("%s:req:%s" % (PREFIX, rid), "ack_activity_id", r.json()["id"])


def error(status, code, message):
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


REQUIRED = [("type",), ("id",), ("serviceUrl",), ("conversation", "id"), ("from", "id"),
            ("recipient", "id")]


def field(obj, path):
    for k in path:
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj


@app.post("/api/messages")
async def messages(request: Request, background: BackgroundTasks):
    try:
        activity = json.loads(await request.body())
    except ValueError:
        return error(400, "bad_request", "body is not JSON")
    if not isinstance(activity, dict) or any(not isinstance(field(activity, p), str)
                                             for p in REQUIRED):
        return error(400, "bad_request", "missing field")
    bad = check_token(request.headers.get("authorization"), activity)
    if bad:
        return error(bad, "unauthorized", "token refused")
    cmd = parse_command(activity) if activity["type"] == "message" else None
    if not cmd:
        return JSONResponse({})
    rid = await enqueue(activity, *cmd)
    background.add_task(send_ack, activity, cmd[0], rid)
    return JSONResponse({"requestId": rid}, status_code=202)


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}
