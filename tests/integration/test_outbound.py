"""Outbound, end to end over loopback: digestd posts cards to the Bot
connector (digest-stub stands in for Microsoft and the upstream), gets its
token by client credentials, paces and retries per SPEC §6, and serves the
synchronous path (USE_ASYNC_DIGEST=false, and the fallback while Redis is
down) without making anyone else wait."""
import json
import signal
import threading
import time
import unittest
import urllib.parse

from harness import (FIXTURES, Digestd, DigestdTestCase, RedisServer, Stub, card_of, card_text,
                     hgetall, load_fixture, redis_cmd, wait_until)


def quote(s):
    return urllib.parse.quote(s, safe="")


_conv_seq = [0]


def activity(stub, name="teams-personal-chat.json", text=None, id=None, conv=None):
    """A fixture sent to the stub, in a conversation of its own unless conv
    is given: Teams' pacing (7 sends/s per conversation) would otherwise
    spread a burst of tests over many seconds, as it should."""
    a = load_fixture(name)
    a["serviceUrl"] = stub.service_url
    _conv_seq[0] += 1
    a["conversation"]["id"] = conv or "%s-t%d" % (a["conversation"]["id"], _conv_seq[0])
    if text is not None:
        a["text"] = text
        a.pop("entities", None)
    if id is not None:
        a["id"] = id
    return a


class World(DigestdTestCase):
    """Redis + digest-stub + digestd per test class."""
    stub_args = ()

    def setUp(self):
        super().setUp()
        self.stub.clear()


class AckCards(World):
    stub_args = ("--token-ttl", "3600s")

    def test_ack_card_reaches_the_connector_for_each_fixture(self):
        for name in FIXTURES:
            with self.subTest(fixture=name):
                self.stub.clear()
                a = activity(self.stub, name)
                status, _, body = self.d.post_json(a)
                self.assertEqual(status, 202, body)
                rid = json.loads(body)["requestId"]
                msg = self.stub.wait_outbox(1)[0]
                self.assertEqual(msg["method"], "POST")
                self.assertEqual(msg["path"], "/v3/conversations/%s/activities/%s"
                                 % (quote(a["conversation"]["id"]), quote(a["id"])))
                self.assertEqual(msg["conversation_id"], a["conversation"]["id"])
                self.assertTrue(msg["authorization"].startswith("Bearer stub-token-"))
                sent, card = card_of(msg)
                self.assertEqual(sent["type"], "message")
                self.assertNotIn("text", sent)
                self.assertEqual(sent["from"]["id"], a["recipient"]["id"])
                self.assertEqual(sent["recipient"]["id"], a["from"]["id"])
                self.assertEqual(sent["conversation"]["id"], a["conversation"]["id"])
                self.assertEqual(sent["replyToId"], a["id"])
                self.assertEqual(card["type"], "AdaptiveCard")
                self.assertIn(rid, card_text(card))
                self.assertIn("advisors", card_text(card))
                # The ack card's id is stored on the audit record.
                wait_until(lambda: hgetall(self.redis.port, "{digest}:req:" + rid)
                           .get("ack_activity_id") == msg["response_id"], 5, "ack_activity_id")

    def test_200_requests_cause_one_token_request(self):
        before = self.stub.stats()["token_requests"]
        results = []

        def post(i):
            results.append(self.d.post_json(activity(self.stub, id="tok-%d" % i))[0])

        threads = [threading.Thread(target=post, args=(i,)) for i in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(results.count(202), 200)
        self.stub.wait_outbox(200, 30)
        # At most one fetch for the whole burst (none if the token was cached).
        self.assertLessEqual(self.stub.stats()["token_requests"] - before, 1)
        self.assertGreaterEqual(self.stub.stats()["tokens_issued"], 1)

    def test_401_triggers_exactly_one_refetch(self):
        self.d.post_json(activity(self.stub, id="warm-401"))
        self.stub.wait_outbox(1)
        self.stub.clear()
        before = self.stub.stats()["token_requests"]
        self.stub.inject(target="connector", status=401, count=1)
        self.assertEqual(self.d.post_json(activity(self.stub, id="after-401"))[0], 202)
        box = self.stub.wait_outbox(2)
        time.sleep(0.5)
        self.assertEqual([m["status"] for m in self.stub.outbox()], [401, 200])
        self.assertEqual(self.stub.stats()["token_requests"] - before, 1)
        self.assertNotEqual(box[0]["authorization"], box[1]["authorization"])

    def test_429_is_retried_no_sooner_than_retry_after(self):
        self.stub.inject(target="connector", status=429, retry_after=1, count=1)
        self.assertEqual(self.d.post_json(activity(self.stub, id="t429"))[0], 202)
        box = self.stub.wait_outbox(2, 15)
        self.assertEqual([m["status"] for m in box], [429, 200])
        self.assertGreaterEqual(box[1]["received_ms"] - box[0]["received_ms"], 1000)

    def test_403_is_not_retried(self):
        self.stub.inject(target="connector", status=403, count=1)
        self.assertEqual(self.d.post_json(activity(self.stub, id="t403"))[0], 202)
        self.stub.wait_outbox(1)
        time.sleep(1.5)
        self.assertEqual([m["status"] for m in self.stub.outbox()], [403])

    def test_service_url_outside_the_allow_list_sends_nothing(self):
        before = self.stub.stats()
        a = activity(self.stub, id="evil")
        a["serviceUrl"] = "https://evil.example.com/"
        status, _, _ = self.d.post_json(a)
        self.assertEqual(status, 403)
        a["serviceUrl"] = "http://localhost:%d/" % self.stub.port  # not listed: 127.0.0.1 is
        self.assertEqual(self.d.post_json(a)[0], 403)
        time.sleep(0.5)
        after = self.stub.stats()
        for k in ("token_requests", "connector_requests", "upstream_requests"):
            self.assertEqual(after[k], before[k], k)

    def test_help_status_and_bad_arguments_get_their_cards(self):
        cases = [("help", "help"), ("what is this", "help"),
                 ("digest nosuch", "advisors, c_suite, global"), ("digest advisors bad@", "email"),
                 ("status not/an/id", "request id")]
        for i, (text, word) in enumerate(cases):
            with self.subTest(text=text):
                self.stub.clear()
                status, _, body = self.d.post_json(activity(self.stub, text=text, id="c%d" % i))
                self.assertEqual((status, body), (200, b"{}"))
                _, card = card_of(self.stub.wait_outbox(1)[0])
                self.assertIn(word, card_text(card).lower())
        # status of this conversation's latest request, then of a given id
        self.stub.clear()
        status, _, body = self.d.post_json(activity(self.stub, id="for-status", conv="a:status"))
        rid = json.loads(body)["requestId"]
        self.stub.wait_outbox(1)
        self.stub.clear()
        self.d.post_json(activity(self.stub, text="status", id="st-1", conv="a:status"))
        _, card = card_of(self.stub.wait_outbox(1)[0])
        self.assertIn(rid, card_text(card))
        self.stub.clear()
        self.d.post_json(activity(self.stub, text="status " + rid, id="st-2", conv="a:status"))
        _, card = card_of(self.stub.wait_outbox(1)[0])
        self.assertIn(rid, card_text(card))
        self.assertIn("queued", card_text(card).lower())
        # The same id asked from another conversation shows nothing of it.
        self.stub.clear()
        self.d.post_json(activity(self.stub, text="status " + rid, id="st-3", conv="a:other"))
        _, card = card_of(self.stub.wait_outbox(1)[0])
        self.assertNotIn("queued", card_text(card).lower())
        self.assertNotIn("advisors", card_text(card).lower())


class AckRetries(World):
    """The acknowledgment is retried as Microsoft says (research §4.5): 429
    after its Retry-After however short our own backoff cap, and 502/504,
    up to CONNECTOR_RETRY_AFTER_MAX_S. digestd runs --role api, so the
    acknowledgment is the only card posted."""
    digestd_env = {"RETRY_BASE_MS": "50", "RETRY_MAX_MS": "200",
                   "CONNECTOR_RETRY_AFTER_MAX_S": "5"}

    def post_digest(self, id):
        status, _, body = self.d.post_json(activity(self.stub, id=id))
        self.assertEqual(status, 202, body)
        return json.loads(body)["requestId"]

    def assert_ack_recorded(self, rid, msg):
        self.assertEqual(msg["card"], "ack")
        wait_until(lambda: hgetall(self.redis.port, "{digest}:req:" + rid)
                   .get("ack_activity_id") == msg["response_id"], 5, "ack_activity_id")

    def test_429_with_retry_after_over_retry_max_is_waited_for(self):
        self.stub.inject(target="connector", status=429, retry_after=2, count=1)
        rid = self.post_digest("ack-429")
        box = self.stub.wait_outbox(2, 15)
        self.assertEqual([m["status"] for m in box], [429, 200])
        # Waited the server's 2 s, not RETRY_MAX_MS's 200 ms.
        self.assertGreaterEqual(box[1]["received_ms"] - box[0]["received_ms"], 2000)
        self.assert_ack_recorded(rid, box[1])
        time.sleep(0.3)
        self.assertEqual(len(self.stub.outbox()), 2)

    def test_502_and_504_are_retried(self):
        for status in (502, 504):
            with self.subTest(status=status):
                self.stub.clear()
                self.stub.inject(target="connector", status=status, count=1)
                rid = self.post_digest("ack-%d" % status)
                box = self.stub.wait_outbox(2, 10)
                self.assertEqual([m["status"] for m in box], [status, 200])
                self.assert_ack_recorded(rid, box[1])

    def test_retry_after_over_the_max_fails_as_throttled(self):
        self.stub.inject(target="connector", status=429, retry_after=6, count=1)
        rid = self.post_digest("ack-throttled")
        wait_until(lambda: "over CONNECTOR_RETRY_AFTER_MAX_S" in self.d.log(), 10,
                   "the throttled line")
        self.assertIn(rid, [line for line in self.d.log().splitlines()
                            if "over CONNECTOR_RETRY_AFTER_MAX_S" in line][0])
        self.assertEqual([m["status"] for m in self.stub.outbox()], [429])


class AckShutdown(unittest.TestCase):
    """SIGTERM while the acknowledgment waits out a Retry-After: it is sent
    when the wait ends inside the grace, and given up (logged) at its end."""

    def run_case(self, retry_after_s, grace_ms):
        redis = RedisServer().start()
        stub = Stub().start()
        env = stub.env()
        env.update({"SHUTDOWN_GRACE_MS": str(grace_ms), "RETRY_MAX_MS": "200",
                    "RETRY_BASE_MS": "50"})
        d = Digestd(redis.url, env).start()
        try:
            stub.inject(target="connector", status=429, retry_after=retry_after_s, count=1)
            status, _, body = d.post_json(activity(stub, id="ack-sigterm"))
            self.assertEqual(status, 202, body)
            rid = json.loads(body)["requestId"]
            stub.wait_outbox(1)
            t0 = time.monotonic()
            self.assertEqual(d.stop(), 0, d.log())
            return time.monotonic() - t0, rid, d.log(), [m["status"] for m in stub.outbox()]
        finally:
            d.cleanup()
            stub.stop()
            redis.stop()

    def test_a_wait_that_ends_inside_the_grace_is_sent(self):
        _, _, log, statuses = self.run_case(1, 10000)
        self.assertEqual(statuses, [429, 200], log)

    def test_the_grace_ends_a_long_wait_and_says_so(self):
        elapsed, rid, log, statuses = self.run_case(60, 1000)
        self.assertEqual(statuses, [429], log)
        self.assertLess(elapsed, 8)
        given_up = [line for line in log.splitlines() if "given up at shutdown" in line]
        self.assertEqual(len(given_up), 1, log)
        self.assertIn(rid, given_up[0])
        self.assertIn("1 waiting to retry", log)


class PacingFlood(unittest.TestCase):
    """One conversation flooded past Teams' pacing limits: the refused cards
    are counted in /metrics and said in one warning, not one line each."""

    def test_refused_cards_are_counted_and_said_once(self):
        redis = RedisServer().start()
        stub = Stub().start()
        env = stub.env()
        env["SHUTDOWN_GRACE_MS"] = "1000"
        d = Digestd(redis.url, env).start()
        try:
            # The connector holds every card: 7 go out and hang, 120 wait, the rest are refused.
            stub.inject(target="connector", hang=True, count=1000)
            n = 7 + 120 + 30
            for i in range(n):
                a = activity(stub, id="flood-%d" % i, conv="19:flood@thread.v2")
                self.assertEqual(d.post_json(a)[0], 202)

            def refused():
                for line in d.get("/metrics")[2].decode().splitlines():
                    if line.startswith("digestd_connector_pacing_refused_total "):
                        return int(line.split()[1])
                return None
            wait_until(lambda: refused() == 30, 10, "30 refused sends in /metrics")
            self.assertEqual(d.stop(), 0, d.log())
            log = d.log()
            # The first refusal, then (within 10 s, so only at exit) the count of the rest.
            lines = [l for l in log.splitlines() if "pacing limits" in l]
            self.assertEqual(len(lines), 2, "\n".join(lines))
            self.assertIn("19:flood@thread.v2 is past Teams' pacing limits", lines[0])
            self.assertIn("19:flood@thread.v2: 29 more sends refused", lines[1])
            self.assertNotIn("reply card not delivered", log)
        finally:
            d.cleanup()
            stub.stop()
            redis.stop()


class SayCommand(World):
    """`digest-stub say`, the way scripts/run.sh and a developer use it."""

    def say(self, *args):
        import subprocess
        from harness import STUB_BIN
        return subprocess.run(
            [STUB_BIN, "say"] + list(args) + ["--to", "http://127.0.0.1:%d/api/messages" % self.d.port,
                                              "--stub", self.stub.url, "--key-dir", self.stub.dir],
            capture_output=True, timeout=30)

    def test_each_conversation_kind_reaches_the_connector(self):
        for kind in ("personal", "channel", "group"):
            with self.subTest(kind=kind):
                self.stub.clear()
                r = self.say("digest advisors", "--conversation", kind)
                self.assertEqual(r.returncode, 0, r.stderr)
                lines = r.stdout.decode().splitlines()
                self.assertEqual(lines[0], "HTTP 202")
                rid = json.loads(lines[1])["requestId"]
                msg = self.stub.wait_outbox(1)[0]
                self.assertEqual((msg["card"], msg["request_id"]), ("ack", rid))

    def test_a_refused_activity_exits_1(self):
        r = self.say("digest advisors", "--service-url", "https://evil.example.com/")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stdout.startswith(b"HTTP 403"), r.stdout)


class TokenExpiry(World):
    stub_args = ("--token-ttl", "2s")

    def test_expired_token_is_refreshed(self):
        self.d.post_json(activity(self.stub, id="exp-1"))
        self.stub.wait_outbox(1)
        first = self.stub.stats()["token_requests"]
        time.sleep(1.6)  # a 2 s token is used for half its life
        self.d.post_json(activity(self.stub, id="exp-2"))
        box = self.stub.wait_outbox(2)
        self.assertEqual(self.stub.stats()["token_requests"], first + 1)
        self.assertNotEqual(box[0]["authorization"], box[1]["authorization"])
        self.assertTrue(all(m["status"] == 200 for m in box))


class SyncMode(World):
    stub_args = ("--upstream-delay", "2s")
    digestd_env = {"USE_ASYNC_DIGEST": "false", "UPSTREAM_TIMEOUT_MS": "4000"}

    def test_100_concurrent_sync_requests_take_about_the_upstream_delay(self):
        results = [None] * 100
        health = []

        def post(i):
            results[i] = self.d.post_json(activity(self.stub, id="sync-%d" % i))

        def probe():
            for _ in range(10):
                t0 = time.monotonic()
                self.assertEqual(self.d.get("/healthz")[0], 200)
                health.append(time.monotonic() - t0)
                time.sleep(0.1)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(100)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        p = threading.Thread(target=probe)
        p.start()
        for t in threads:
            t.join(60)
        p.join(30)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 10, "a serial server would need 200 s")
        self.assertGreaterEqual(elapsed, 1.9)
        for status, _, body in results:
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body)["mode"], "sync")
        self.assertLess(max(health), 1.0, health)
        box = self.stub.wait_outbox(100)
        kinds = {m["card"] for m in box}
        self.assertEqual(kinds, {"result"}, kinds)
        # Audit records: mode sync, delivered; no job on the stream.
        rid = json.loads(results[0][2])["requestId"]
        wait_until(lambda: hgetall(self.redis.port, "{digest}:req:" + rid)["status"] == "delivered",
                   5, "the record to say delivered")
        rec = hgetall(self.redis.port, "{digest}:req:" + rid)
        self.assertEqual((rec["mode"], rec["status"]), ("sync", "delivered"))
        self.assertTrue(int(rec["started_ms"]) <= int(rec["fetched_ms"]) <= int(rec["delivered_ms"]))
        self.assertTrue(rec["result_activity_id"].startswith("stub-activity-"))
        self.assertEqual(redis_cmd(self.redis.port, "XLEN", "{digest}:requests"), 0)

    def test_duplicate_in_sync_mode(self):
        a = activity(self.stub, id="sync-dup")
        a["conversation"]["id"] = "a:sync-dup"
        first = self.d.post_json(a)
        second = self.d.post_json(a)
        self.assertEqual(first[0], 200)
        self.assertEqual(second[0], 200)
        self.assertEqual(json.loads(second[2]),
                         {"requestId": json.loads(first[2])["requestId"], "duplicate": True})
        time.sleep(0.3)
        self.assertEqual(len(self.stub.outbox()), 1)

    def test_test_email_banner(self):
        a = activity(self.stub, text="digest c_suite someone@example.com", id="banner")
        self.assertEqual(self.d.post_json(a)[0], 200)
        _, card = card_of(self.stub.wait_outbox(1)[0])
        text = card_text(card)
        self.assertIn("TEST MODE", text)
        self.assertIn("someone@example.com", text)

    def test_upstream_500_gives_502_and_an_error_card(self):
        self.stub.inject(target="upstream", status=500, count=1)
        status, _, body = self.d.post_json(activity(self.stub, id="up500"))
        self.assertEqual(status, 502, body)
        self.assertIn("error", json.loads(body))
        msg = self.stub.wait_outbox(1)[0]
        self.assertEqual(msg["card"], "error")
        rid = [k for k in redis_cmd(self.redis.port, "KEYS", "{digest}:req:*")
               if hgetall(self.redis.port, k).get("activity_id") == "up500"][0]
        # The record is updated right after the answer: wait for it.
        wait_until(lambda: hgetall(self.redis.port, rid)["status"] == "failed", 5, "failed")
        rec = hgetall(self.redis.port, rid)
        self.assertIn("HTTP 500", rec["last_error"])
        self.assertNotIn("delivered_ms", rec)

    def test_upstream_that_never_answers_gives_504(self):
        self.stub.inject(target="upstream", hang=True, count=1)
        t0 = time.monotonic()
        status, _, body = self.d.post_json(activity(self.stub, id="uphang"))
        self.assertEqual(status, 504, body)
        self.assertGreaterEqual(time.monotonic() - t0, 3.5)
        self.assertEqual(self.stub.wait_outbox(1)[0]["card"], "error")


class SyncShutdown(unittest.TestCase):
    """SIGTERM while sync requests wait on the upstream: they finish within
    SHUTDOWN_GRACE_MS, or are cancelled when it expires; exit 0 either way."""

    def run_case(self, stub_args, grace_ms, expect_status):
        redis = RedisServer().start()
        stub = Stub(*stub_args).start()
        env = stub.env()
        env.update({"USE_ASYNC_DIGEST": "false", "SHUTDOWN_GRACE_MS": str(grace_ms)})
        d = Digestd(redis.url, env).start()
        try:
            results = []
            threads = [threading.Thread(target=lambda i=i: results.append(
                d.post_json(activity(stub, id="sd-%d" % i))[0])) for i in range(5)]
            for t in threads:
                t.start()
            wait_until(lambda: stub.stats()["upstream_requests"] >= 5, 10, "5 fetches")
            t0 = time.monotonic()
            self.assertEqual(d.stop(), 0, d.log())
            for t in threads:
                t.join(10)
            self.assertEqual(sorted(results), [expect_status] * 5)
            # digestd has exited: every record update it made has landed.
            records = [hgetall(redis.port, k)
                       for k in redis_cmd(redis.port, "KEYS", "{digest}:req:*")]
            self.assertEqual(len(records), 5)
            if expect_status == 503:
                # Given back to the channel: its retry must not read "duplicate".
                self.assertEqual(redis_cmd(redis.port, "KEYS", "{digest}:dedup:*"), [])
                self.assertEqual({r["status"] for r in records}, {"failed"})
            else:
                self.assertEqual({r["status"] for r in records}, {"delivered"})
            return time.monotonic() - t0
        finally:
            d.cleanup()
            stub.stop()
            redis.stop()

    def test_second_sigterm_does_not_kill_the_drain(self):
        redis = RedisServer().start()
        stub = Stub("--upstream-delay", "1s").start()
        env = stub.env()
        env.update({"USE_ASYNC_DIGEST": "false"})
        d = Digestd(redis.url, env).start()
        try:
            results = []
            t = threading.Thread(target=lambda: results.append(
                d.post_json(activity(stub, id="twice"))[0]))
            t.start()
            wait_until(lambda: stub.stats()["upstream_requests"] >= 1, 10, "the fetch")
            d.proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            d.proc.send_signal(signal.SIGTERM)
            self.assertEqual(d.stop(), 0, d.log())
            t.join(10)
            self.assertEqual(results, [200])
        finally:
            d.cleanup()
            stub.stop()
            redis.stop()

    def test_in_flight_sync_requests_finish(self):
        self.run_case(("--upstream-delay", "1s"), 10000, 200)

    def test_grace_expiry_cancels_what_is_left(self):
        elapsed = self.run_case(("--upstream-delay", "60s"), 1000, 503)
        self.assertLess(elapsed, 8)


class AsyncFallback(World):
    def test_redis_down_serves_digest_synchronously_then_nothing_lost_or_doubled(self):
        self.redis.kill()
        wait_until(lambda: self.d.get("/readyz")[0] == 503, 10, "Redis down")
        status, _, body = self.d.post_json(activity(self.stub, id="fallback-1"))
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["mode"], "sync")
        self.assertEqual(self.stub.wait_outbox(1)[0]["card"], "result")
        # Other activities are refused so the channel retries them later.
        self.assertEqual(self.d.post_json(activity(self.stub, text="help", id="h"))[0], 503)

        self.redis.start()
        wait_until(lambda: self.d.get("/readyz")[0] == 200, 15, "Redis back")
        self.stub.clear()
        status, _, body = self.d.post_json(activity(self.stub, id="after-1"))
        self.assertEqual(status, 202, body)
        self.assertEqual(redis_cmd(self.redis.port, "XLEN", "{digest}:requests"), 1)
        self.assertEqual(self.stub.wait_outbox(1)[0]["card"], "ack")
        time.sleep(0.3)
        self.assertEqual(len(self.stub.outbox()), 1)


if __name__ == "__main__":
    unittest.main()
