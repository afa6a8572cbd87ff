"""At most once under the faults of issue 10 (docs/worker.md, "Fenced
sends"): a lease lost while a result waits on a connector 429 Retry-After,
a worker frozen (SIGSTOP) past the claim idle time, Redis killed and
restarted from its append-only file while two workers post results, and a
result that is ready while Redis is away. Real redis-server, digest-stub
and digestd processes over loopback, as in test_worker.py."""
import os
import signal
import time
import unittest

import harness
from harness import Digestd, redis_cmd, wait_until
from test_worker import STREAM, AofRedis, WorkerWorld

# Short enough for a test: a send marked by a vanished holder is over after
# claim idle + this + 1 s (JOB_UNKNOWN_SLACK_MS).
FAST = {"WORKER_CLAIM_IDLE_MS": 3000, "WORKER_CLAIM_INTERVAL_MS": 200,
        "CONNECTOR_TIMEOUT_MS": 2000}


class FenceWorld(WorkerWorld):
    redis_class = AofRedis

    def setUp(self):
        super().setUp()
        # A test before may have restarted Redis: the api takes up to its reconnect
        # backoff to see it again, and until then serves digests in place (200).
        wait_until(lambda: self.api.get("/readyz")[0] == 200, 15, "the api ready")

    def tearDown(self):
        for w in self.workers:  # a frozen worker cannot stop
            if w.proc and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGCONT)
        super().tearDown()

    def results_of(self, rid, status=200):
        return [m for m in self.stub.outbox() if m["request_id"] == rid and m["card"] == "result"
                and m["kind"] == "reply" and m["status"] == status]

    def updates_of(self, rid):
        return [m for m in self.stub.outbox() if m["request_id"] == rid and m["kind"] == "update"]

    def post_one(self):
        """One request whose acknowledgment card is already out (so an
        injected connector rule meets the worker's send, not the ack)."""
        [rid] = self.post(1)
        wait_until(lambda: any(m["card"] == "ack" for m in self.messages(rid)), 10, "ack card")
        return rid


class LostLease(FenceWorld):
    """A send waiting on Retry-After is given up when the lease is lost."""
    stub_args = ("--upstream-delay", "2s")

    def test_a_lease_lost_during_a_429_retry_is_never_posted_by_its_old_owner(self):
        w = self.worker(WORKER_CLAIM_IDLE_MS=9000, WORKER_CLAIM_INTERVAL_MS=200)
        rid = self.post_one()
        self.stub.inject(target="connector", status=429, retry_after=3, count=1)
        wait_until(lambda: self.results_of(rid, 429), 10, "the 429")
        # Another consumer takes the entry (as a claim would) while the
        # connector waits out Retry-After: the owner's next renewal finds it
        # lost and cancels the send.
        [[sid, _]] = redis_cmd(self.redis.port, "XRANGE", STREAM, "-", "+")[-1:]
        redis_cmd(self.redis.port, "XCLAIM", STREAM, "workers", "thief:1", "0", sid, "JUSTID")
        wait_until(lambda: "now held by another consumer" in w.log(), 10, "the loss")
        time.sleep(4)  # past the Retry-After: a retry would have gone out by now
        self.assertEqual(self.results_of(rid), [], w.log())
        self.assertIn("not sent: cancelled", w.log())
        self.assertEqual(self.record(rid)["status"], "processing")
        # The thief's entry is untouched: nobody acknowledged it for the thief.
        self.assertEqual(self.pending(), 1)


class FrozenWorker(FenceWorld):
    stub_args = ("--upstream-delay", "2s")

    def test_sigstop_while_the_result_waits_on_retry_after_then_sigcont_posts_once(self):
        a = self.worker(**FAST)
        rid = self.post_one()
        self.stub.inject(target="connector", status=429, retry_after=1, count=1)
        wait_until(lambda: self.results_of(rid, 429), 10, "the 429")
        a.proc.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        # b connects, waits a full claim idle, claims, finds a's send marked
        # and waits until it is surely over, then sends and records it.
        b = self.worker(**FAST)
        self.wait_status([rid], "delivered", 30)
        self.assertIn("may still be in flight", b.log())
        self.assertGreater(time.monotonic() - t0, 3)
        a.proc.send_signal(signal.SIGCONT)
        time.sleep(3)  # a wakes: its Retry-After is long over, its lease gone
        self.assertEqual(len(self.results_of(rid)), 1, a.log())
        wait_until(lambda: self.updates_of(rid), 10, "the acknowledgment update")
        time.sleep(1)
        self.assertEqual(len(self.updates_of(rid)), 1)
        rec = self.record(rid)
        self.assertEqual(rec["result_activity_id"], self.results_of(rid)[0]["response_id"])
        self.assertIn('digestd_jobs_total{outcome="resent_unknown"} 1',
                      b.get("/metrics")[2].decode())
        self.assertEqual(self.pending(), 0)

    def test_sigstop_past_the_claim_idle_during_the_fetch_gives_one_result(self):
        a = self.worker(WORKER_CONCURRENCY=100, **FAST)
        self.stub.inject(target="upstream", delay_ms=2000, count=20)
        rids = self.post(20)
        wait_until(lambda: self.pending() == 20, 10, "20 jobs taken by a")
        a.proc.send_signal(signal.SIGSTOP)
        b = self.worker(**FAST)
        time.sleep(5)  # a frozen for 5 s, past the 3 s claim idle
        a.proc.send_signal(signal.SIGCONT)
        self.wait_status(rids, "delivered", 40)
        time.sleep(2)
        counts = self.results()
        self.assertEqual({counts.get(r) for r in rids}, {1}, a.log())
        self.assertIn("claimed", b.log())


class RedisRestart(FenceWorld):
    stub_args = ("--upstream-delay", "1s")

    def test_redis_kill_9_and_restart_from_aof_with_two_live_workers_posts_each_once(self):
        env = dict(WORKER_CONCURRENCY=20, WORKER_CLAIM_IDLE_MS=2000, WORKER_CLAIM_INTERVAL_MS=200)
        a = self.worker(**env)
        b = self.worker(**env)
        rids = self.post(120)  # 1 s each, 40 at a time: ~3 s of work
        wait_until(lambda: "delivered after" in a.log() + b.log(), 15, "first deliveries")
        self.redis.proc.kill()
        self.redis.proc.wait()
        time.sleep(3)
        self.redis.start()
        self.wait_status(rids, "delivered", 90)
        time.sleep(2)
        counts = self.results()
        self.assertEqual({counts.get(r) for r in rids}, {1})
        self.assertEqual(self.pending(), 0)
        # Live owners renewed before anyone could claim: nothing was taken.
        self.assertNotIn("claimed", a.log() + b.log())
        self.assertEqual(redis_cmd(self.redis.port, "GET", "{digest}:schema"), "2")

    def test_a_result_ready_while_redis_is_away_is_posted_only_after_its_fence(self):
        w = self.worker(WORKER_CLAIM_IDLE_MS=2000, WORKER_CLAIM_INTERVAL_MS=200)
        self.stub.inject(target="upstream", delay_ms=1500, count=5)
        rids = self.post(5)
        wait_until(lambda: self.pending() == 5, 10, "5 jobs taken")
        self.redis.proc.kill()
        self.redis.proc.wait()
        time.sleep(4)  # the fetches end at 1.5 s: their results wait for the fence
        self.assertEqual(self.results(), {}, w.log())
        self.redis.start()
        self.wait_status(rids, "delivered", 30)
        time.sleep(1)
        self.assertEqual({self.results().get(r) for r in rids}, {1})
        self.assertEqual(w.proc.poll(), None)


OLD_BIN = os.environ.get("OLD_DIGESTD_BIN")


@unittest.skipUnless(OLD_BIN and os.access(OLD_BIN, os.X_OK),
                     "OLD_DIGESTD_BIN (a digestd built before the fence, e.g. from dcf120a) not set")
class MixedVersions(FenceWorld):
    """A rolling restart across the fence: an old worker (no fence, schema 1)
    and a new one in the same group, each killed with jobs in flight, the
    other taking its jobs over. Every job delivered once, and an old
    process reads what the new one wrote."""
    stub_args = ("--upstream-delay", "2s")

    def old_worker(self, **env):
        e = self.stub.env()
        e.update({"RETRY_BASE_MS": "50", "RETRY_MAX_MS": "200"})
        e.update({k: str(v) for k, v in env.items()})
        w = Digestd(self.redis.url, e, args=["--role", "worker"])
        self.workers.append(w)
        saved, harness.DIGESTD_BIN = harness.DIGESTD_BIN, OLD_BIN
        try:
            return w.start()
        finally:
            harness.DIGESTD_BIN = saved

    def run_pair(self, kill_old):
        env = dict(WORKER_CONCURRENCY=30, WORKER_CLAIM_IDLE_MS=2000, WORKER_CLAIM_INTERVAL_MS=200)
        old = self.old_worker(**env)
        new = self.worker(**env)
        rids = self.post(60)
        wait_until(lambda: self.pending() >= 40, 10, "jobs taken by both")
        victim = old if kill_old else new
        victim.proc.kill()
        victim.proc.wait()
        self.wait_status(rids, "delivered", 60)
        time.sleep(1)
        counts = self.results()
        self.assertEqual({counts.get(r) for r in rids}, {1})
        self.assertEqual(self.pending(), 0)
        return old, new, rids

    def test_old_killed_new_takes_over(self):
        old, new, rids = self.run_pair(kill_old=True)
        self.assertIn("claimed", new.log())
        # What the new one delivered was fenced; the old one's records have no mark.
        self.assertTrue([r for r in rids if "send_token" in self.record(r)])
        self.assertEqual(redis_cmd(self.redis.port, "GET", "{digest}:schema"), "2")

    def test_new_killed_old_takes_over_then_runs_alone(self):
        old, new, rids = self.run_pair(kill_old=False)
        self.assertIn("claimed", old.log())
        # Rollback: the old one alone goes on with new jobs on the same Redis,
        # beside the schema key and the fields the new one wrote.
        more = self.post(10)
        self.wait_status(more, "delivered", 30)
        self.assertEqual({self.results().get(r) for r in more}, {1})


if __name__ == "__main__":
    unittest.main()
