"""The staged rollout (SPEC §2), end to end: real redis-server, digest-stub
and digestd processes. USE_ASYNC_DIGEST=N% serves that share of users async,
chosen by the documented hash (FNV-1a 64 of from.aadObjectId, else from.id,
mod 100 < N), the same user the same way on every request and in every
process; ASYNC_DIGEST_ALLOW users and conversations are always async unless
the flag is false; the audit record's mode and /metrics say which path served
each request; a Redis outage turns only the async-chosen ones into fallbacks.

Each user writes in a conversation of their own, so Teams' pacing per
conversation never slows the burst down; the stub's upstream answers at once.
"""
import concurrent.futures
import json
import re
import shutil
import subprocess
import unittest

from harness import Digestd, RedisServer, Stub, hgetall, load_fixture, redis_cmd, wait_until

PROMTOOL = shutil.which("promtool")
USERS = 2000
SENDERS = 16  # concurrent clients: the burst takes a few seconds, not minutes


def fnv1a64(s):
    """The hash docs/operations.md documents, written out independently of the C."""
    h = 0xcbf29ce484222325
    for c in s.encode():
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def user(i):
    """The i-th test user: even ones carry an AAD object id, odd ones only from.id."""
    return {"from_id": "29:1rollout-user-%05d" % i,
            "aad": "4f0c%04x-77aa-4b1e-9c3d-%012x" % (i, i * 7919) if i % 2 == 0 else None,
            "conv": "a:rollout-conv-%05d" % i}


def bucket_of(u):
    return fnv1a64(u["aad"] or u["from_id"]) % 100


_seq = [0]


def activity(stub, u, conv=None):
    a = load_fixture("teams-personal-chat.json")
    _seq[0] += 1
    a["serviceUrl"] = stub.service_url
    a["id"] = "rollout-act-%d" % _seq[0]
    a["text"] = "digest advisors"
    a.pop("entities", None)
    a["from"]["id"] = u["from_id"]
    if u["aad"]:
        a["from"]["aadObjectId"] = u["aad"]
    else:
        a["from"].pop("aadObjectId", None)
    a["conversation"]["id"] = conv or u["conv"]
    return a


def mode_counts(d):
    """{mode: count} of digestd_requests_by_mode_total in d's /metrics."""
    text = d.get("/metrics")[2].decode()
    return {m: int(v) for m, v in
            re.findall(r'^digestd_requests_by_mode_total\{mode="(\w+)"\} (\d+)$', text, re.M)}


class Rollout(unittest.TestCase):
    """One Redis and one stub; a digestd (--role api) per flag setting."""

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()
        cls.stub = Stub("--outbox-max", "100")
        cls.procs = []
        try:
            cls.redis.start()
            cls.stub.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for d in cls.procs:
            d.cleanup()
        cls.stub.stop()
        cls.redis.stop()

    def digestd(self, flag, allow=None):
        env = dict(self.stub.env(), USE_ASYNC_DIGEST=flag)
        if allow is not None:
            env["ASYNC_DIGEST_ALLOW"] = allow
        d = Digestd(self.redis.url, env)
        self.procs.append(d)
        d.start()
        self.addCleanup(self.stop, d)
        return d

    def stop(self, d):
        rc = d.stop()
        self.assertEqual(rc, 0, d.log())

    def send(self, d, u, conv=None):
        """Posts one digest request; returns the path that served it, from the
        answer and from the audit record, which must agree."""
        status, _, body = d.post_json(activity(self.stub, u, conv))
        reply = json.loads(body)
        if status == 202:
            answered = "async"
        else:
            self.assertEqual((status, reply.get("mode")), (200, "sync"), body)
            answered = "sync"
        rec = hgetall(self.redis.port, "{digest}:req:" + reply["requestId"])
        self.assertEqual(rec.get("mode"), answered, (u, rec))
        return answered

    def send_all(self, d, users):
        with concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
            return list(pool.map(lambda u: self.send(d, u), users))

    def test_0_percent_serves_everyone_sync(self):
        d = self.digestd("0%")
        users = [user(i) for i in range(200)]
        self.assertEqual(set(self.send_all(d, users)), {"sync"})
        self.assertEqual(mode_counts(d), {"async": 0, "sync": 200, "fallback": 0})

    def test_100_percent_serves_everyone_async(self):
        for flag in ("100%", "true"):
            with self.subTest(flag=flag):
                d = self.digestd(flag)
                users = [user(i) for i in range(200)]
                self.assertEqual(set(self.send_all(d, users)), {"async"})
                self.assertEqual(mode_counts(d), {"async": 200, "sync": 0, "fallback": 0})

    def test_30_percent_is_a_stable_share_of_users(self):
        d = self.digestd("30%")
        users = [user(i) for i in range(USERS)]
        paths = self.send_all(d, users)
        n_async = paths.count("async")
        self.assertGreaterEqual(n_async, USERS * 25 // 100, n_async)
        self.assertLessEqual(n_async, USERS * 35 // 100, n_async)
        # Exactly the users the documented hash puts below 30.
        want = ["async" if bucket_of(u) < 30 else "sync" for u in users]
        self.assertEqual(paths, want)
        # The same users again, and in a second process: the same path each.
        again = users[:400]
        self.assertEqual(self.send_all(d, again), want[:400])
        other = self.digestd("30%")
        self.assertEqual(self.send_all(other, again), want[:400])
        # Each heartbeat shows the stage (digestctl procs, the operators' page).
        wait_until(lambda: sorted(hgetall(self.redis.port, k).get("async_mode") for k in
                                  redis_cmd(self.redis.port, "KEYS", "{digest}:proc:*"))
                   == ["30%", "30%"], 10, "two heartbeats saying 30%")
        self.assertIn("digest path: USE_ASYNC_DIGEST=30%, 0 ASYNC_DIGEST_ALLOW entries", d.log())
        # /metrics counts requests by mode, and passes promtool.
        self.assertEqual(mode_counts(d), {"async": want.count("async") + want[:400].count("async"),
                                          "sync": want.count("sync") + want[:400].count("sync"),
                                          "fallback": 0})
        self.assertEqual(mode_counts(other)["async"], want[:400].count("async"))
        self.assertIsNotNone(PROMTOOL, "promtool not found: scripts/deps.sh installs it")
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=d.get("/metrics")[2],
                           capture_output=True, timeout=60)
        self.assertEqual((r.returncode, (r.stdout + r.stderr).decode()), (0, ""))

    def test_raising_the_share_moves_users_only_to_async(self):
        users = [user(i) for i in range(300)]
        low = self.send_all(self.digestd("10%"), users)
        high = self.send_all(self.digestd("50%"), users)
        self.assertTrue(all(h == "async" for lo, h in zip(low, high) if lo == "async"))
        self.assertGreater(high.count("async"), low.count("async"))

    def allowed(self):
        """An allowed user (by AAD id), an allowed user (by from.id) and an allowed conversation."""
        by_aad, by_from = user(10), user(11)  # 10 has an AAD id, 11 only from.id
        conv = "a:rollout-internal-team"
        return by_aad, by_from, conv, "%s, %s,msteams:%s" % (by_aad["aad"], by_from["from_id"], conv)

    def test_allowed_users_and_conversations_are_always_async(self):
        by_aad, by_from, conv, allow = self.allowed()
        d = self.digestd("0%", allow)
        for _ in range(3):
            self.assertEqual(self.send(d, by_aad), "async")
            self.assertEqual(self.send(d, by_from), "async")
            # Anyone writing in the allowed conversation.
            self.assertEqual(self.send(d, user(500), conv=conv), "async")
        # Everyone else: sync at 0 %, and the same user elsewhere is not allowed.
        self.assertEqual(set(self.send_all(d, [user(i) for i in range(20, 120)])), {"sync"})
        self.assertEqual(self.send(d, user(500)), "sync")
        self.assertEqual(mode_counts(d), {"async": 9, "sync": 101, "fallback": 0})

    def test_false_beats_the_allow_list(self):
        by_aad, by_from, conv, allow = self.allowed()
        d = self.digestd("false", allow)
        self.assertEqual(self.send(d, by_aad), "sync")
        self.assertEqual(self.send(d, by_from), "sync")
        self.assertEqual(self.send(d, user(500), conv=conv), "sync")
        self.assertEqual(mode_counts(d), {"async": 0, "sync": 3, "fallback": 0})


class RolloutRedisDown(unittest.TestCase):
    """While Redis is unreachable the sync path serves everyone; only those the
    rollout sent async count as fallbacks."""

    def test_only_async_chosen_users_fall_back(self):
        redis, stub = RedisServer(), Stub()
        d = None
        try:
            redis.start()
            stub.start()
            inside = next(user(i) for i in range(100) if bucket_of(user(i)) < 50)
            outside = next(user(i) for i in range(100) if bucket_of(user(i)) >= 50)
            d = Digestd(redis.url, dict(stub.env(), USE_ASYNC_DIGEST="50%")).start()
            redis.kill()
            wait_until(lambda: d.get("/readyz")[0] == 503, 10, "Redis down")
            for u in (inside, outside, inside):
                status, _, body = d.post_json(activity(stub, u))
                self.assertEqual((status, json.loads(body)["mode"]), (200, "sync"), body)
            self.assertEqual(mode_counts(d), {"async": 0, "sync": 1, "fallback": 2})
            self.assertEqual(d.stop(), 0, d.log())
        finally:
            if d:
                d.cleanup()
            stub.stop()
            redis.stop()


if __name__ == "__main__":
    unittest.main()
