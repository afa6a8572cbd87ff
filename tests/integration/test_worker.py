"""The worker, end to end (SPEC §5, §6): jobs posted to a `--role api`
digestd become result cards at digest-stub's connector through separate
`--role worker` processes, exactly once, through retries, dead letters,
worker crashes, Redis restarts and shutdowns. Everything real over
loopback: redis-server, digest-stub, digestd."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import (REDIS_BIN, Digestd, RedisServer, Stub, card_of, card_text, hgetall, load_fixture,
                     redis_cmd, wait_until)

STREAM = "{digest}:requests"
DEAD = "{digest}:dead"

ADMIN_TOKEN = "worker-test-admin-token"

_seq = [0]


def activity(stub, text="digest advisors"):
    """A personal-chat activity in a conversation of its own (Teams' pacing
    of 7 sends/s per conversation would otherwise slow a burst down)."""
    a = load_fixture("teams-personal-chat.json")
    _seq[0] += 1
    a["serviceUrl"] = stub.service_url
    a["conversation"]["id"] = "%s-w%d" % (a["conversation"]["id"], _seq[0])
    a["id"] = "worker-test-%d-%d" % (os.getpid(), _seq[0])
    a["text"] = text
    a.pop("entities", None)
    return a


class AofRedis(RedisServer):
    """A redis-server that keeps every write on disk (appendfsync always),
    so a kill -9 and restart on the same port loses nothing acknowledged."""

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir,
             "--daemonize", "no", "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.ping(), 10, "redis-server")
        return self

    def ping(self):
        # While it loads the append-only file, Redis answers -LOADING.
        try:
            return redis_cmd(self.port, "PING") == "PONG"
        except Exception:
            return False


class WorkerWorld(unittest.TestCase):
    """Redis + digest-stub + an api digestd per class; workers per test."""
    stub_args = ()
    redis_class = RedisServer

    @classmethod
    def setUpClass(cls):
        cls.redis = cls.redis_class()
        cls.stub = Stub("--outbox-max", "10000", *cls.stub_args)
        cls.api = None
        try:
            cls.redis.start()
            cls.stub.start()
            env = cls.stub.env()
            env["ADMIN_TOKEN"] = ADMIN_TOKEN
            cls.api = Digestd(cls.redis.url, env, args=["--role", "api"]).start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.api and cls.api.proc and cls.api.proc.poll() is None:
                rc = cls.api.stop()
                assert rc == 0, "api digestd exited %s:\n%s" % (rc, cls.api.log())
        finally:
            if cls.api:
                cls.api.cleanup()
            cls.stub.stop()
            cls.redis.stop()

    def setUp(self):
        self.workers = []
        self.stub.clear()

    def tearDown(self):
        for w in self.workers:
            if w.proc and w.proc.poll() is None:
                rc = w.stop()
                self.assertEqual(rc, 0, w.log())
            if not w.logf.closed:
                w.logf.close()  # a worker killed by the test
            w.cleanup()

    # --- helpers ---
    def worker(self, **env):
        e = self.stub.env()
        e.update({"RETRY_BASE_MS": "50", "RETRY_MAX_MS": "200"})
        e.update({k: str(v) for k, v in env.items()})
        w = Digestd(self.redis.url, e, args=["--role", "worker"])
        self.workers.append(w)
        return w.start()

    def post(self, n, text="digest advisors"):
        """n digest requests, 16 at a time; their request ids, in order."""
        acts = [activity(self.stub, text) for _ in range(n)]
        out = [None] * n
        errors = []

        def run(k):
            for i in range(k, n, 16):
                status, _, body = self.api.post_json(acts[i])
                if status != 202:
                    errors.append((status, body))
                else:
                    out[i] = json.loads(body)["requestId"]

        threads = [threading.Thread(target=run, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        return out

    def statuses(self, rids):
        """The audit status of each request id, in one round trip."""
        script = ("local out = {} for i, k in ipairs(KEYS) do "
                  "out[i] = redis.call('HGET', k, 'status') or '' end return out")
        keys = ["{digest}:req:%s" % r for r in rids]
        return redis_cmd(self.redis.port, "EVAL", script, str(len(keys)), *keys)

    def wait_status(self, rids, status, timeout):
        wait_until(lambda: all(s == status for s in self.statuses(rids)), timeout,
                   "%d requests %s" % (len(rids), status), interval=0.2)

    def pending(self):
        return redis_cmd(self.redis.port, "XPENDING", STREAM, "workers")[0]

    def results(self, status=200):
        """request id -> result cards the connector accepted."""
        out = {}
        for m in self.stub.outbox():
            if m["card"] == "result" and m["kind"] == "reply" and m["status"] == status:
                out[m["request_id"]] = out.get(m["request_id"], 0) + 1
        return out

    def consumers(self):
        return [dict(zip(c[::2], c[1::2]))["name"]
                for c in redis_cmd(self.redis.port, "XINFO", "CONSUMERS", STREAM, "workers")]

    def messages(self, rid):
        return [m for m in self.stub.outbox() if m["request_id"] == rid]

    def record(self, rid):
        return hgetall(self.redis.port, "{digest}:req:%s" % rid)


class ManyJobs(WorkerWorld):
    stub_args = ("--upstream-delay", "1s")

    def test_1000_jobs_through_one_worker_with_a_1s_upstream(self):
        w = self.worker(WORKER_CONCURRENCY=500)
        t0 = time.monotonic()
        rids = self.post(1000)
        self.wait_status(rids, "delivered", 120)
        elapsed = time.monotonic() - t0
        # 1,000 one-second fetches, 500 at a time: ~2 s of fetching; a
        # worker taking one job at a time would need 1,000 s.
        self.assertLess(elapsed, 60, "took %.1f s" % elapsed)
        wait_until(lambda: len(self.results()) == 1000, 10, "1000 result cards")
        self.assertEqual(set(self.results().values()), {1})  # each exactly once
        self.assertEqual(self.pending(), 0)
        self.assertEqual(redis_cmd(self.redis.port, "XLEN", DEAD), 0)
        for rid in rids[:50]:
            rec = self.record(rid)
            self.assertEqual(rec["status"], "delivered")
            self.assertEqual(rec["attempts"], "1")
            for f in ("created_ms", "started_ms", "fetched_ms", "delivered_ms"):
                self.assertTrue(rec[f].isdigit(), (f, rec))
            self.assertLessEqual(int(rec["created_ms"]), int(rec["started_ms"]))
            self.assertLessEqual(int(rec["started_ms"]), int(rec["fetched_ms"]))
            self.assertLessEqual(int(rec["fetched_ms"]), int(rec["delivered_ms"]))
            self.assertTrue(rec["result_activity_id"])
            self.assertTrue(rec["ack_activity_id"])
        # The acknowledgment card is updated in place: a PUT to its own id.
        wait_until(lambda: sum(1 for m in self.stub.outbox() if m["kind"] == "update") == 1000,
                   20, "1000 acknowledgment updates")
        rec = self.record(rids[0])
        puts = [m for m in self.messages(rids[0]) if m["kind"] == "update"]
        self.assertEqual(len(puts), 1)
        self.assertEqual(puts[0]["activity_id"], rec["ack_activity_id"])
        self.assertIn("delivered", card_text(card_of(puts[0])[1]).lower())
        metrics = w.get("/metrics")[2].decode()
        self.assertIn('digestd_jobs_total{outcome="delivered"} 1000', metrics)
        self.assertIn("digestd_job_delivery_seconds_count 1000", metrics)


class Failures(WorkerWorld):
    """Retries with backoff, dead letters and the cards the user sees."""

    def setUp(self):
        super().setUp()
        self.w = self.worker(WORKER_MAX_ATTEMPTS=4)

    def test_upstream_failing_twice_then_succeeding_is_delivered_on_attempt_3(self):
        self.stub.inject(target="upstream", status=503, count=2)
        before = self.stub.stats()["upstream_requests"]
        [rid] = self.post(1)
        self.wait_status([rid], "delivered", 15)
        self.assertEqual(self.record(rid)["attempts"], "3")
        wait_until(lambda: self.results().get(rid) == 1, 5, "the result card")
        self.assertEqual(self.stub.stats()["upstream_requests"] - before, 3)
        self.assertEqual(self.pending(), 0)

    def test_upstream_400_is_final(self):
        self.stub.inject(target="upstream", status=400, count=1)
        [rid] = self.post(1)
        self.wait_status([rid], "failed", 15)
        rec = self.record(rid)
        self.assertEqual(rec["attempts"], "1")
        self.assertIn("400", rec["last_error"])
        wait_until(lambda: any(m["card"] == "error" for m in self.messages(rid)), 5, "error card")
        self.assertEqual(self.pending(), 0)
        dead = redis_cmd(self.redis.port, "XRANGE", DEAD, "-", "+")
        fields = dict(zip(dead[-1][1][::2], dead[-1][1][1::2]))
        self.assertEqual(fields["request_id"], rid)
        self.assertIn("400", fields["reason"])
        self.assertEqual(fields["attempts"], "1")
        self.assertEqual(self.results().get(rid), None)
        # The acknowledgment card now says it failed.
        wait_until(lambda: any(m["kind"] == "update" for m in self.messages(rid)), 5, "update")

    def test_a_dead_job_requeued_through_the_admin_route_is_delivered(self):
        self.stub.inject(target="upstream", status=400, count=1)
        [rid] = self.post(1)
        self.wait_status([rid], "failed", 15)
        status, _, body = self.api.request("POST", "/admin/dead/%s/requeue" % rid, b"",
                                           {"Authorization": "Bearer " + ADMIN_TOKEN})
        self.assertEqual(status, 200, body)
        self.wait_status([rid], "delivered", 15)
        rec = self.record(rid)
        self.assertEqual(rec["attempts"], "1")  # counted afresh after the requeue
        dead = redis_cmd(self.redis.port, "XRANGE", DEAD, "-", "+")
        self.assertNotIn(rid, [dict(zip(e[1][::2], e[1][1::2]))["request_id"] for e in dead])
        wait_until(lambda: self.results().get(rid) == 1, 5, "the result card")
        self.assertEqual(self.pending(), 0)

    def test_upstream_always_503_is_dead_after_max_attempts(self):
        self.stub.inject(target="upstream", status=503, count=1000)
        before = self.stub.stats()["upstream_requests"]
        [rid] = self.post(1)
        self.wait_status([rid], "dead", 20)
        self.assertEqual(self.record(rid)["attempts"], "4")
        self.assertEqual(self.stub.stats()["upstream_requests"] - before, 4)
        wait_until(lambda: any(m["card"] == "error" for m in self.messages(rid)), 5, "error card")
        self.assertEqual(self.pending(), 0)
        dead = redis_cmd(self.redis.port, "XRANGE", DEAD, "-", "+")
        self.assertIn(rid, [dict(zip(e[1][::2], e[1][1::2]))["request_id"] for e in dead])
        self.stub.clear()

    def test_connector_429_with_retry_after_delivers_once_after_the_wait(self):
        # The fetch takes a second, so the acknowledgment card is out first
        # and the 429 is for the result.
        self.stub.inject(target="upstream", delay_ms=1000, count=1)
        [rid] = self.post(1)
        wait_until(lambda: any(m["card"] == "ack" for m in self.messages(rid)), 5, "ack card")
        self.stub.inject(target="connector", status=429, retry_after=1, count=1)
        self.wait_status([rid], "delivered", 15)
        msgs = [m for m in self.messages(rid) if m["card"] == "result"]
        self.assertEqual([m["status"] for m in msgs], [429, 200])
        self.assertGreaterEqual(msgs[1]["received_ms"] - msgs[0]["received_ms"], 1000)
        self.assertEqual(self.results().get(rid), 1)

    def test_a_failing_acknowledgment_update_changes_nothing_else(self):
        self.stub.inject(target="upstream", delay_ms=1000, count=1)
        [rid] = self.post(1)
        wait_until(lambda: any(m["card"] == "ack" for m in self.messages(rid)), 5, "ack card")
        # The next connector call (the result) is answered normally, the one
        # after it (the PUT of the acknowledgment) is refused.
        self.stub.inject(target="connector", delay_ms=1, count=1)
        self.stub.inject(target="connector", status=403, count=1)
        self.wait_status([rid], "delivered", 15)
        wait_until(lambda: "acknowledgment card not updated" in self.w.log(), 5, "log line")
        rec = self.record(rid)
        self.assertEqual(rec["attempts"], "1")
        self.assertEqual(self.results().get(rid), 1)
        self.assertEqual(self.pending(), 0)
        self.assertEqual(redis_cmd(self.redis.port, "XLEN", DEAD), 0)

    def test_a_job_already_delivered_is_only_acknowledged(self):
        [rid] = self.post(1)
        self.wait_status([rid], "delivered", 10)
        entry = redis_cmd(self.redis.port, "XRANGE", STREAM, "-", "+")[-1]
        # The same job again, as after a crash between sending and XACK.
        redis_cmd(self.redis.port, "XADD", STREAM, "*", *entry[1])
        wait_until(lambda: "already delivered" in self.w.log(), 10, "the skip")
        self.assertEqual(self.pending(), 0)
        self.assertEqual(self.results().get(rid), 1)
        self.assertEqual(self.record(rid)["attempts"], "1")

    def test_test_email_gets_the_test_mode_banner(self):
        [rid] = self.post(1, text="digest c_suite someone@example.com")
        self.wait_status([rid], "delivered", 10)
        [m] = [m for m in self.messages(rid) if m["card"] == "result"]
        text = card_text(card_of(m)[1])
        self.assertIn("TEST MODE", text)
        self.assertIn("someone@example.com", text)

    def test_connector_403_marks_the_conversation_stale(self):
        self.stub.inject(target="upstream", delay_ms=1000, count=1)
        a = activity(self.stub)
        status, _, body = self.api.post_json(a)
        rid = json.loads(body)["requestId"]
        wait_until(lambda: any(m["card"] == "ack" for m in self.messages(rid)), 5, "ack card")
        self.stub.inject(target="connector", status=403, count=1)
        self.wait_status([rid], "failed", 10)
        conv = "{digest}:conv:%s:%s" % (a["channelId"], a["conversation"]["id"])
        self.assertEqual(hgetall(self.redis.port, conv)["stale"], "1")
        self.assertEqual(self.pending(), 0)
        # Nothing more is sent to a conversation that refused us.
        time.sleep(0.5)
        self.assertEqual([m["card"] for m in self.messages(rid)], ["ack", "result"])


class Recovery(WorkerWorld):
    """Crashes, restarts and shutdowns: every job delivered, none twice."""
    stub_args = ("--upstream-delay", "3s")
    redis_class = AofRedis

    def test_kill_9_with_200_in_flight_then_a_second_worker_claims_them(self):
        w1 = self.worker(WORKER_CONCURRENCY=500)
        before = self.stub.stats()["upstream_requests"]
        rids = self.post(200)
        wait_until(lambda: self.stub.stats()["upstream_requests"] >= before + 200, 15,
                   "200 fetches")
        self.assertEqual(self.pending(), 200)
        w1.proc.kill()
        w1.proc.wait()
        self.worker(WORKER_CLAIM_IDLE_MS=1000, WORKER_CLAIM_INTERVAL_MS=200)
        self.wait_status(rids, "delivered", 60)
        wait_until(lambda: len(self.results()) == 200, 10, "200 results")
        self.assertEqual(set(self.results().values()), {1})
        self.assertEqual(self.pending(), 0)
        self.assertEqual({self.record(r)["attempts"] for r in rids[:20]}, {"2"})

    def test_sigterm_hands_unfinished_jobs_to_another_worker(self):
        w1 = self.worker(WORKER_CONCURRENCY=100, SHUTDOWN_GRACE_MS=1000)
        rids = self.post(50)
        wait_until(lambda: self.pending() == 50, 15, "50 jobs taken")
        t0 = time.monotonic()
        self.assertEqual(w1.stop(), 0, w1.log())
        self.assertLess(time.monotonic() - t0, 8)
        self.assertIn("handed back", w1.log())
        # Handed back at once: the second worker needs no claim timeout.
        self.worker()
        self.wait_status(rids, "delivered", 30)
        wait_until(lambda: len(self.results()) == 50, 10, "50 results")
        self.assertEqual(set(self.results().values()), {1})
        self.assertEqual(self.pending(), 0)

    def test_sigterm_lets_jobs_under_way_finish_within_the_grace(self):
        w1 = self.worker(SHUTDOWN_GRACE_MS=10000)
        before = self.stub.stats()["upstream_requests"]
        rids = self.post(20)
        wait_until(lambda: self.stub.stats()["upstream_requests"] >= before + 20, 15,
                   "20 fetches under way")
        me = "%s:%d" % (socket.gethostname(), w1.proc.pid)
        self.assertIn(me, self.consumers())
        self.assertEqual(w1.stop(), 0, w1.log())
        self.assertEqual(self.statuses(rids), ["delivered"] * 20)
        self.assertEqual(self.pending(), 0)
        # Holding nothing, it left the group instead of lingering in XINFO CONSUMERS.
        self.assertNotIn(me, self.consumers())

    def test_leases_keep_slow_jobs_from_being_claimed(self):
        # Each job takes 3 s, three times the claim idle time: without lease
        # renewal the other worker would claim and deliver them all again.
        a = self.worker(WORKER_CLAIM_IDLE_MS=1000, WORKER_CLAIM_INTERVAL_MS=200)
        b = self.worker(WORKER_CLAIM_IDLE_MS=1000, WORKER_CLAIM_INTERVAL_MS=200)
        rids = self.post(40)
        self.wait_status(rids, "delivered", 30)
        wait_until(lambda: len(self.results()) == 40, 10, "40 results")
        self.assertEqual(set(self.results().values()), {1})
        self.assertEqual({self.record(r)["attempts"] for r in rids}, {"1"})
        self.assertNotIn("claimed", a.log() + b.log())

    def test_two_workers_share_the_group_and_deliver_each_job_once(self):
        a = self.worker(WORKER_CONCURRENCY=50)
        b = self.worker(WORKER_CONCURRENCY=50)
        rids = self.post(200)
        self.wait_status(rids, "delivered", 60)
        wait_until(lambda: len(self.results()) == 200, 10, "200 results")
        self.assertEqual(set(self.results().values()), {1})
        na = a.log().count("delivered after")
        nb = b.log().count("delivered after")
        self.assertEqual(na + nb, 200)
        self.assertGreater(na, 0)
        self.assertGreater(nb, 0)

    def test_redis_restarted_while_jobs_flow(self):
        w = self.worker(WORKER_CONCURRENCY=20, WORKER_CLAIM_IDLE_MS=3000,
                        WORKER_CLAIM_INTERVAL_MS=500)
        rids = self.post(100)  # 3 s each, 20 at a time: ~15 s of work
        wait_until(lambda: "delivered after" in w.log(), 15, "first deliveries")
        self.redis.proc.kill()
        self.redis.proc.wait()
        time.sleep(1.5)
        self.redis.start()
        self.wait_status(rids, "delivered", 90)
        wait_until(lambda: len(self.results()) == 100, 10, "100 results")
        self.assertEqual(set(self.results().values()), {1})
        self.assertEqual(self.pending(), 0)
        self.assertEqual(w.proc.poll(), None)  # no crash, no restart


if __name__ == "__main__":
    unittest.main()
