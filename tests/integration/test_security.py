"""Who may talk to digestd (issue 5): Bot Framework JWT checked against
digest-stub's real JWKS, service URL trust, the admin routes, and hostile
HTTP input. Every refusal is checked for its status AND for its silence:
nothing written to Redis, nothing sent to the connector."""
import json
import os
import resource
import socket
import threading
import time
import unittest

from harness import (APP_ID, Digestd, DigestdTestCase, RedisServer, Stub, data_keys, free_port,
                     hgetall, load_fixture, mint_token, redis_cmd, wait_until)


def activity(stub_or_url, id="sec-1", text="digest advisors"):
    """A digest request (so an accepted one writes a job and posts a card)."""
    a = load_fixture("teams-personal-chat.json")
    a["serviceUrl"] = stub_or_url if isinstance(stub_or_url, str) else stub_or_url.service_url
    a["id"] = id
    a["text"] = text
    a.pop("entities", None)
    return a


class Auth(DigestdTestCase):
    """Redis + digest-stub (JWKS with the msteams endorsement) + digestd."""
    stub_args = ()

    def setUp(self):
        super().setUp()
        self.stub.clear()
        self.n = getattr(self, "n", 0) + 1

    def post(self, authorization, a=None, **kw):
        """POSTs a (a fresh digest request by default) with that header value."""
        a = a or activity(self.stub, id="sec-%s-%d" % (self._testMethodName, self.n), **kw)
        self.n += 1
        return self.d.post_json(a, headers={"Authorization": authorization})

    def token(self, *options, service_url=None, **kw):
        return self.d.token(service_url or self.stub.service_url, *options, **kw)

    def assertRefusedSilently(self, status, body, expected, what):
        self.assertEqual(status, expected, (what, body))
        err = json.loads(body)["error"]
        self.assertIn("code", err)
        self.assertIn("message", err)
        self.assertNothingWritten()
        time.sleep(0.2)  # a card would be on its way by now
        self.assertEqual(self.stub.outbox(), [], what)


class TokenChecks(Auth):

    def test_valid_token_passes(self):
        status, _, body = self.post("Bearer " + self.token())
        self.assertEqual(status, 202, body)
        self.assertEqual(self.xlen(), 1)
        self.assertEqual(self.stub.wait_outbox(1)[0]["card"], "ack")

    def test_scheme_is_case_insensitive(self):
        status, _, body = self.post("bEARER " + self.token())
        self.assertEqual(status, 202, body)
        # Its ack card must land before the next test clears the outbox.
        self.assertEqual(self.stub.wait_outbox(1)[0]["card"], "ack")

    def test_each_bad_token_is_refused_and_nothing_happens(self):
        # (what, options, status, a word of the reason: proof it failed for that reason)
        cases = [
            ("wrong aud", ("--aud", "00000000-0000-0000-0000-000000000000"), 401, "audience"),
            ("wrong iss", ("--iss", "https://api.botframework.evil"), 401, "issuer"),
            ("expired by 301 s", ("--exp-offset", "-301"), 401, "expired"),
            # nbf is fixed when the token is minted and only gets closer while
            # it is posted: a loaded CI machine spent over a second on that, so
            # 301 s at minting read as 300 s at the check. 305 leaves room.
            ("nbf 305 s ahead", ("--nbf-offset", "305"), 401, "not yet valid"),
            ("bad signature", ("--bad-signature",), 401, "signature"),
            ("alg none", ("--alg", "none"), 401, ""),  # no signature part: not even a JWS
            ("HS256 signed with the public key", ("--alg", "HS256"), 401, "algorithm"),
            ("no serviceurl claim", ("--no-serviceurl",), 401, "serviceurl"),
        ]
        for what, options, expected, reason in cases:
            with self.subTest(what):
                # Time-sensitive tokens are minted fresh, never from the cache.
                status, _, body = self.post("Bearer " + self.token(*options, cache=False))
                self.assertRefusedSilently(status, body, expected, what)
                self.assertIn(reason, json.loads(body)["error"]["message"], what)

    def test_claims_the_sdk_refuses_are_refused(self):
        # Put to botbuilder-js 4.23's channel validation, each of these is refused
        # (issue 9); `digest-stub token --claim NAME=JSON` forges them.
        cases = [("aud an array holding the app id", 'aud=["%s"]' % APP_ID, "audience")]
        for value in ("null", "true", '"1700000000"', "[1700000000]", '{"t":1}', "1e20",
                      "1e400"):
            cases.append(("nbf " + value, "nbf=" + value, "nbf"))
        for what, claim, reason in cases:
            with self.subTest(what):
                status, _, body = self.post("Bearer " + self.token("--claim", claim))
                self.assertRefusedSilently(status, body, 401, what)
                self.assertIn(reason, json.loads(body)["error"]["message"], what)

    def test_exp_exactly_at_the_tolerance_is_expired(self):
        # Minted 300 s back, it can only be further back when checked: always expired.
        status, _, body = self.post("Bearer " + self.token("--exp-offset", "-300", cache=False))
        self.assertRefusedSilently(status, body, 401, "exp now - 300")
        self.assertIn("expired", json.loads(body)["error"]["message"])

    def test_claims_nested_16_deep_pass_and_17_do_not(self):
        for depth, expected in ((16, 202), (17, 401)):
            with self.subTest(depth=depth):
                # The claims object is level 1; the claim adds depth - 1 objects
                # around a number (json-c alone would count the number as a level).
                deep = '{"x":' * (depth - 1) + "1" + "}" * (depth - 1)
                status, _, body = self.post("Bearer " + self.token("--claim", "deep=" + deep))
                self.assertEqual(status, expected, body)

    def test_token_for_another_serviceurl(self):
        tok = self.token(service_url="https://smba.trafficmanager.net/amer/")
        status, _, body = self.post("Bearer " + tok)
        self.assertRefusedSilently(status, body, 401, "another serviceurl")

    def test_malformed_headers_and_tokens(self):
        good = self.token()
        head, payload, sig = good.split(".")
        cases = [
            ("missing header", None),
            ("empty", ""),
            ("other scheme", "Basic " + good),
            ("scheme only", "Bearer"),
            ("scheme and space", "Bearer "),
            ("two spaces", "Bearer  " + good),
            ("two tokens", "Bearer %s %s" % (good, good)),
            ("malformed base64", "Bearer %s.%s.%s" % (head, payload[:-4] + "!!!!", sig)),
            ("padding", "Bearer %s.%s.%s==" % (head, payload, sig)),
            ("3 parts of garbage", "Bearer abc.def.ghi"),
            ("2 parts", "Bearer %s.%s" % (head, payload)),
            ("4 parts", "Bearer %s.%s.%s.%s" % (head, payload, sig, sig)),
            ("header not JSON", "Bearer %s.%s.%s" % (payload[:8], payload, sig)),
        ]
        for what, value in cases:
            with self.subTest(what):
                status, headers, body = self.post(value)
                self.assertRefusedSilently(status, body, 401, what)
                self.assertEqual(headers.get("www-authenticate"), "Bearer", what)

    def test_header_is_checked_before_the_body(self):
        # SPEC §3: a missing header is 401 even for a body that is not JSON...
        status, _, _ = self.d.post_json(b"{broken", headers={"Authorization": None})
        self.assertEqual(status, 401)
        # ...while a well-formed header with a broken body is the body's 400.
        status, _, _ = self.d.post_json(b"{broken")
        self.assertEqual(status, 400)
        self.assertNothingWritten()

    def test_expired_within_tolerance_passes(self):
        status, _, body = self.post("Bearer " + self.token("--exp-offset", "-200", cache=False))
        self.assertEqual(status, 202, body)
        status, _, body = self.post("Bearer " + self.token("--nbf-offset", "200", cache=False))
        self.assertEqual(status, 202, body)


class ServiceUrlTrust(Auth):
    """A token that names the URL honestly is not enough: the host must be allowed."""

    def test_metadata_address_and_hosts_off_the_list_are_403_and_nothing_is_sent(self):
        before = self.stub.stats()
        for url in ("http://169.254.169.254/", "https://169.254.169.254/",
                    "https://evil.example.com/", "http://localhost:%d/" % self.stub.port):
            with self.subTest(url):
                status, _, body = self.post("Bearer " + self.token(service_url=url),
                                            activity(url, id="ssrf-%d" % self.n))
                self.assertRefusedSilently(status, body, 403, url)
        after = self.stub.stats()
        for k in ("token_requests", "connector_requests", "upstream_requests"):
            self.assertEqual(after[k], before[k], k)


class Endorsements(Auth):
    """A key that lists endorsements must list the activity's channelId."""
    stub_args = ("--endorsements", "skype")

    def test_key_without_msteams_is_403(self):
        status, _, body = self.post("Bearer " + self.token())
        self.assertRefusedSilently(status, body, 403, "endorsements")


class EmptyEndorsements(Auth):
    stub_args = ("--endorsements", "")

    def test_empty_list_endorses_nothing(self):
        status, _, body = self.post("Bearer " + self.token())
        self.assertRefusedSilently(status, body, 403, "empty endorsements")


class UnknownKid(Auth):
    """An unknown kid refetches the keys, at most once per JWKS_MIN_REFRESH_S."""
    digestd_env = {"JWKS_MIN_REFRESH_S": "3"}

    def keys_fetched(self):
        return self.stub.stats()["keys_requests"]

    def test_refetch_is_rate_limited(self):
        wait_until(lambda: self.keys_fetched() == 1, 5, "the first key fetch")
        time.sleep(3.2)  # the start-up fetch is now JWKS_MIN_REFRESH_S old
        for i in range(5):
            status, _, body = self.post("Bearer " + self.token("--kid", "no-such-kid-%d" % i))
            self.assertRefusedSilently(status, body, 401, "unknown kid %d" % i)
        # The first unknown kid refetched; the other four came too soon.
        self.assertEqual(self.keys_fetched(), 2)
        # A known kid is never a reason to fetch.
        self.assertEqual(self.post("Bearer " + self.token())[0], 202)
        self.assertEqual(self.keys_fetched(), 2)
        time.sleep(3.2)
        self.assertEqual(self.post("Bearer " + self.token("--kid", "later"))[0], 401)
        self.assertEqual(self.keys_fetched(), 3)


class Readiness(unittest.TestCase):
    """/readyz says 503 until the keys can be had, and requests wait only a bounded time."""

    def test_readyz_503_while_openid_unreachable_then_200(self):
        redis = RedisServer().start()
        port = free_port()
        d = Digestd(redis.url, {
            "BOT_OPENID_URL": "http://127.0.0.1:%d/v1/.well-known/openidconfiguration" % port,
            "SERVICE_URL_ALLOW": "127.0.0.1"})
        stub = Stub()
        stub.args[stub.args.index("127.0.0.1:0")] = "127.0.0.1:%d" % port
        # Minting now creates the stub's key, so the stub starts fast later.
        d.key_dir = stub.dir
        token = mint_token(stub.dir, "http://127.0.0.1:%d/" % port)
        try:
            d.start(wait_ready=False)
            status, _, body = d.get("/readyz")
            self.assertEqual(status, 503)
            reasons = json.loads(body)["reasons"]
            self.assertTrue(any("signing keys" in r for r in reasons), reasons)
            # Waiting for keys is for tokens that could pass; garbage is 401 at once.
            t0 = time.monotonic()
            status, headers, _ = d.post_json(activity("http://127.0.0.1:%d/" % port),
                                             headers={"Authorization": "Bearer x.y.z"})
            self.assertEqual(status, 401)
            self.assertLess(time.monotonic() - t0, 2)

            # A request that could pass waits for the keys (AUTH_WAIT_MS) and is
            # served once they arrive: the stub comes up while it waits.
            waiting = []
            t = threading.Thread(target=lambda: waiting.append(d.post_json(
                activity("http://127.0.0.1:%d/" % port, id="waited"),
                headers={"Authorization": "Bearer " + token})))
            t.start()
            time.sleep(0.3)
            self.assertEqual(d.get("/readyz")[0], 503)
            stub.start()
            t.join(15)
            self.assertEqual(waiting[0][0], 202, waiting)
            wait_until(lambda: d.get("/readyz")[0] == 200, 10, "readyz once keys load")
            status, _, body = d.post_json(activity(stub, id="after-ready"),
                                          headers={"Authorization": "Bearer " + token})
            self.assertEqual(status, 202, body)
            self.assertEqual(d.stop(), 0, d.log())
        finally:
            d.cleanup()
            stub.stop()
            redis.stop()

    def test_request_waiting_for_keys_gets_503_with_retry_after(self):
        redis = RedisServer().start()
        stub = Stub().start()  # signs; digestd looks for keys elsewhere (nowhere)
        port = free_port()
        d = Digestd(redis.url, {
            "BOT_OPENID_URL": "http://127.0.0.1:%d/v1/.well-known/openidconfiguration" % port,
            "SERVICE_URL_ALLOW": "127.0.0.1"})
        try:
            d.start(wait_ready=False)
            d.key_dir = stub.dir
            t0 = time.monotonic()
            status, headers, body = d.post_json(activity(stub))
            elapsed = time.monotonic() - t0
            self.assertEqual(status, 503, body)
            self.assertIn("retry-after", headers)
            self.assertTrue(4 <= elapsed < 8, elapsed)  # AUTH_WAIT_MS, bounded
            self.assertEqual(data_keys(redis.port), ["{digest}:requests"])
            self.assertEqual(d.stop(), 0, d.log())
        finally:
            d.cleanup()
            stub.stop()
            redis.stop()


class AuthOff(DigestdTestCase):
    """BOT_AUTH=off: only when asked for, and said loudly."""
    auth = "off"

    def test_unsigned_activity_is_accepted_with_warnings(self):
        a = activity("https://smba.trafficmanager.net/amer/")
        status, _, body = self.d.post_json(a)
        self.assertEqual(status, 202, body)
        status, _, body = self.d.get("/readyz")
        self.assertEqual(status, 200)
        self.assertIn("BOT_AUTH=off", json.loads(body)["warnings"][0])
        self.assertIn("BOT_AUTH=off", self.d.log())


class Admin(DigestdTestCase):
    digestd_env = {"ADMIN_TOKEN": "s3cret-admin-token"}

    def admin(self, method, path, token="s3cret-admin-token"):
        h = {"Authorization": "Bearer " + token} if token is not None else {}
        status, _, body = self.d.request(method, path, b"", h)
        return status, (json.loads(body) if body else None)

    def test_wrong_or_missing_token_is_401(self):
        for token in (None, "", "s3cret-admin-toke", "s3cret-admin-token-", "S3CRET-ADMIN-TOKEN"):
            for method, path in (("GET", "/admin/queue"), ("GET", "/admin/requests/x"),
                                 ("POST", "/admin/dead/x/requeue")):
                with self.subTest(token=token, path=path):
                    status, body = self.admin(method, path, token)
                    self.assertEqual(status, 401)
                    self.assertEqual(body["error"]["code"], "unauthorized")
        status, _, _ = self.d.request("GET", "/admin/queue", b"",
                                      {"Authorization": "Basic s3cret-admin-token"})
        self.assertEqual(status, 401)

    def test_queue(self):
        for i in range(3):
            self.assertEqual(self.d.post_json(activity("https://smba.trafficmanager.net/amer/",
                                                       id="q-%d" % i))[0], 202)
        status, body = self.admin("GET", "/admin/queue")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["length"], 3)
        self.assertEqual(body["dead"], 0)
        group = {g["name"]: g for g in body["groups"]}["workers"]
        self.assertEqual(group["pending"], 0)
        self.assertEqual(group["lag"], 3)
        self.assertIn("consumers", group)

    def test_request_record(self):
        status, _, body = self.d.post_json(activity("https://smba.trafficmanager.net/amer/",
                                                    id="rec-1"))
        rid = json.loads(body)["requestId"]
        status, rec = self.admin("GET", "/admin/requests/" + rid)
        self.assertEqual(status, 200)
        self.assertEqual(rec["status"], "queued")
        self.assertEqual(rec["audience"], "advisors")
        for path in ("/admin/requests/00000000-0000-4000-8000-000000000000",
                     "/admin/requests/", "/admin/requests/a%00b", "/admin/requests/" + "a" * 200):
            status, body = self.admin("GET", path)
            self.assertEqual(status, 404, path)
            self.assertEqual(body["error"]["code"], "not_found")

    def test_requeue_puts_a_dead_job_back_on_the_stream(self):
        rid = "6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
        job = ["request_id", rid, "activity_id", "act-dead", "audience", "advisors",
               "test_email", "", "conv", "msteams:a:conv", "created_ms", "1700000000000"]
        port = self.redis.port
        # As the worker leaves a dead job: the entry, and the record naming it.
        did = redis_cmd(port, "XADD", "{digest}:dead", "*", *job, "reason", "connector 403",
                        "attempts", "5", "failed_ms", "1700000009999")
        redis_cmd(port, "HSET", "{digest}:req:" + rid, "status", "dead", "attempts", "5",
                  "audience", "advisors", "dead_id", did)
        status, body = self.admin("POST", "/admin/dead/%s/requeue" % rid)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["requestId"], rid)
        entries = redis_cmd(port, "XRANGE", "{digest}:requests", "-", "+")
        self.assertEqual(len(entries), 1)
        self.assertEqual(entries[0][0], body["streamId"])
        self.assertEqual(entries[0][1], job)  # the original fields, nothing of the dead letter
        self.assertEqual(redis_cmd(port, "XLEN", "{digest}:dead"), 0)
        rec = hgetall(port, "{digest}:req:" + rid)
        self.assertEqual((rec["status"], rec["attempts"]), ("queued", "0"))
        # Not dead any more: 404, and nothing else moves.
        status, body = self.admin("POST", "/admin/dead/%s/requeue" % rid)
        self.assertEqual(status, 404)
        self.assertEqual(self.xlen(), 1)
        status, _ = self.admin("POST", "/admin/dead/%s/other" % rid)
        self.assertEqual(status, 404)

    def test_requeue_finds_a_dead_job_whose_record_expired(self):
        rid = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
        job = ["request_id", rid, "activity_id", "act-old", "audience", "advisors",
               "test_email", "", "conv", "msteams:a:conv", "created_ms", "1700000000000"]
        port = self.redis.port
        redis_cmd(port, "XADD", "{digest}:dead", "*", *job, "reason", "upstream 400",
                  "attempts", "1", "failed_ms", "1700000009999")
        status, body = self.admin("POST", "/admin/dead/%s/requeue" % rid)
        self.assertEqual(status, 200, body)
        entries = redis_cmd(port, "XRANGE", "{digest}:requests", "-", "+")
        self.assertEqual(entries[-1][1], job)
        self.assertEqual(redis_cmd(port, "EXISTS", "{digest}:req:" + rid), 0)  # not resurrected


def nested(levels):
    """levels JSON objects inside one another."""
    return {"x": nested(levels - 1)} if levels > 1 else {}


class HostileHttp(DigestdTestCase):
    """Request shapes llhttp's strict mode refuses; none may reach the webhook.

    Each carries a valid, signed digest request (smuggled where the shape
    allows), so anything that got through would show up as a job."""

    def signed_request(self, id, extra=b"", te_chunked=False, cl=None):
        body = json.dumps(activity("https://smba.trafficmanager.net/amer/", id=id)).encode()
        head = (b"POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
                self.d.auth_header("https://smba.trafficmanager.net/amer/") + extra)
        if te_chunked:
            head += b"Transfer-Encoding: chunked\r\n"
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        if cl is not False:
            head += b"Content-Length: %d\r\n" % (len(body) if cl is None else cl)
        return head + b"\r\n" + body

    def assertRejected(self, data, what):
        try:
            status, _, _ = self.d.raw(data, timeout=5)
        except ConnectionError:
            status = None  # closed without an answer is a refusal too
        self.assertIn(status, (400, None), what)
        self.assertNothingWritten()

    def test_duplicate_content_length(self):
        smuggled = self.signed_request("smuggled-1")
        data = self.signed_request("dup-cl", b"Content-Length: 0\r\n")
        self.assertRejected(data, "two different lengths")
        data = self.signed_request("dup-cl-same", cl=False)
        n = len(data.split(b"\r\n\r\n", 1)[1])
        data = data.replace(b"\r\n\r\n", b"\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n"
                            % (n, n), 1)
        self.assertRejected(data, "the same length twice")
        self.assertRejected(self.signed_request("dup-cl-smuggle", b"Content-Length: 0\r\n")
                            + smuggled, "a second request behind the first length")

    def test_transfer_encoding_with_content_length(self):
        # Read as chunked, the body ends at "0" and a second request follows; read
        # by Content-Length it is all one body. Either reading is a smuggle.
        smuggled = self.signed_request("smuggled-2")
        data = self.signed_request("te-cl", te_chunked=True, cl=5) + smuggled
        self.assertRejected(data, "TE + CL")
        data = self.signed_request("te-odd", b"Transfer-Encoding: xchunked\r\n", cl=False)
        self.assertRejected(data, "unknown transfer coding")

    def test_bad_chunk_sizes(self):
        good = self.signed_request("chunks", te_chunked=True, cl=False)
        head, body = good.split(b"\r\n\r\n", 1)
        for size in (b"zz", b"-1", b"0x10", b"fffffffffffffffff1", b"", b" 10"):
            with self.subTest(size=size):
                bad = body.replace(body.split(b"\r\n", 1)[0], size, 1)
                self.assertRejected(head + b"\r\n\r\n" + bad, size)

    def test_nul_and_other_bytes_in_the_request_head(self):
        base = self.signed_request("nul")
        cases = {
            "NUL in the URL": base.replace(b"/api/messages", b"/api/mess\x00ages", 1),
            "NUL in a header value": base.replace(b"Host: x", b"Host: x\x00y", 1),
            "NUL in a header name": base.replace(b"Host: x", b"Ho\x00st: x", 1),
            "space before the colon": base.replace(b"Content-Length:", b"Content-Length :", 1),
            "bare LF": base.replace(b"Host: x\r\n", b"Host: x\n", 1),
            # llhttp passes folding through even in its strict build; we refuse it.
            "obsolete line folding": base.replace(b"Host: x\r\n", b"Host: x\r\n y\r\n", 1),
            # llhttp takes a folded value after an empty first line as the whole value
            "folded Content-Length": base.replace(b"Content-Length:", b"Content-Length:\r\n", 1),
        }
        for what, data in cases.items():
            with self.subTest(what):
                self.assertRejected(data, what)

    def test_service_goes_on_after_hostile_requests(self):
        self.assertRejected(self.signed_request("first", b"Content-Length: 0\r\n"), "dup CL")
        status, _, body = self.d.raw(self.signed_request("normal").replace(
            b"Host: x", b"Host: x\r\nConnection: close", 1))
        self.assertEqual(status, 202, body)

    def test_json_nesting_limit(self):
        a = activity("https://smba.trafficmanager.net/amer/", id="deep-64")
        a["channelData"] = nested(63)  # the activity itself is depth 1: 64 in all
        self.assertEqual(self.d.post_json(a)[0], 202)
        a = activity("https://smba.trafficmanager.net/amer/", id="deep-65")
        a["channelData"] = nested(64)
        status, _, body = self.d.post_json(a)
        self.assertEqual((status, json.loads(body)["error"]["code"]), (400, "bad_json"))
        self.assertEqual(self.xlen(), 1)


def vmrss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


class IdleConnections(unittest.TestCase):
    """10,000 idle connections cost bounded memory and do not stop service."""
    N = 10000
    # Measured about 2 KiB a connection with ASan (bench: less without);
    # the bound leaves room but would catch a buffer allocated per connection.
    MAX_KIB_PER_CONN = 8

    def test_10000_idle_connections(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = self.N + 1000
        if hard != resource.RLIM_INFINITY and hard < need:
            self.fail("RLIMIT_NOFILE hard limit %d < %d: raise it to run this test" % (hard, need))
        # digestd inherits the raised limit from this process.
        resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == resource.RLIM_INFINITY
                                                     else min(hard, 2 * self.N), hard))
        redis = RedisServer().start()
        d = Digestd(redis.url, {"MAX_CONNECTIONS": str(self.N + 100)})
        held = []
        try:
            d.start()
            self.assertEqual(d.post_json(activity("https://smba.trafficmanager.net/amer/",
                                                  id="warm"))[0], 202)
            before = vmrss_kib(d.proc.pid)
            for _ in range(self.N):
                held.append(socket.create_connection(("127.0.0.1", d.port), timeout=30))

            def accepted():
                text = d.get("/metrics")[2].decode()
                line = [l for l in text.splitlines() if l.startswith("digestd_http_connections ")]
                return line and float(line[0].split()[1]) >= self.N
            wait_until(accepted, 60, "digestd to accept %d connections" % self.N, 0.5)
            after = vmrss_kib(d.proc.pid)
            t0 = time.monotonic()
            status, _, body = d.post_json(activity("https://smba.trafficmanager.net/amer/",
                                                   id="while-held"))
            self.assertEqual(status, 202, body)
            self.assertLess(time.monotonic() - t0, 2)
            grown = after - before
            print("\n%d idle connections: VmRSS %d -> %d KiB (+%.1f KiB each)"
                  % (self.N, before, after, grown / self.N))
            self.assertLess(grown, self.N * self.MAX_KIB_PER_CONN)
        finally:
            for s in held:
                s.close()
            try:
                self.assertEqual(d.stop(), 0, d.log())
            finally:
                d.cleanup()
                redis.stop()
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class AdminUnset(DigestdTestCase):
    def test_admin_routes_are_404_without_admin_token(self):
        for method, path in (("GET", "/admin/queue"), ("GET", "/admin/requests/x"),
                             ("POST", "/admin/dead/x/requeue")):
            for h in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
                status, _, body = self.d.request(method, path, b"", h)
                self.assertEqual(status, 404, (path, h))
                self.assertEqual(json.loads(body)["error"]["code"], "not_found")


if __name__ == "__main__":
    unittest.main()
