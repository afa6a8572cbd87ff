"""digestctl and the admin JSON against real states (SPEC §3, §5, §7): a
backlog with no workers, a pending entry held by a worker that was kill -9'd,
dead jobs of two reasons, an idle consumer holding nothing beside one holding
work, a process whose heartbeat expired, the retention rule by hand and by
the workers, the pre-rollout check broken item by item, the per-minute
history (fallbacks included), watch under a pseudo-terminal, and what an
unreachable Redis or a bad command line gives. Everything real over
loopback: redis-server, digest-stub, digestd, digestctl."""
import json
import os
import re
import shutil
import socket
import subprocess
import unittest

from harness import (DIGESTCTL_BIN, Digestd, RedisServer, Stub, digestctl, digestctl_json,
                     free_port, hgetall, redis_cmd, wait_until)
from test_worker import ADMIN_TOKEN, DEAD, STREAM, WorkerWorld, activity

PROCS = "{digest}:procs"


def proc_name(d):
    return "%s:%d" % (socket.gethostname(), d.proc.pid)


def fields(flat):
    return dict(zip(flat[0::2], flat[1::2]))


class CtlWorld(WorkerWorld):
    """WorkerWorld (Redis, digest-stub, an api digestd) with digestctl at hand."""

    def setUp(self):
        super().setUp()
        # Each test starts from an empty Redis but for the api process's heartbeat (the
        # heartbeat of a worker killed by the last test would live on for 15 s).
        api = proc_name(self.api)
        for key in redis_cmd(self.redis.port, "KEYS", "*"):
            if key not in ("{digest}:proc:" + api, PROCS):
                redis_cmd(self.redis.port, "DEL", key)
        for name in redis_cmd(self.redis.port, "ZRANGE", PROCS, 0, -1):
            if name != api:
                redis_cmd(self.redis.port, "ZREM", PROCS, name)
        wait_until(lambda: redis_cmd(self.redis.port, "ZSCORE", PROCS, api), 5,
                   "the api process's heartbeat")
        redis_cmd(self.redis.port, "XGROUP", "CREATE", STREAM, "workers", "0", "MKSTREAM")
        self.stub.clear()

    def ctl(self, *args, **kw):
        return digestctl(self.redis.url, *args, **kw)

    def ctl_json(self, *args, **kw):
        return digestctl_json(self.redis.url, *args, **kw)

    def admin(self, method, path, body=b""):
        status, _, data = self.api.request(method, path, body,
                                           {"Authorization": "Bearer " + ADMIN_TOKEN,
                                            "Content-Type": "application/json"})
        return status, (json.loads(data) if data else None)

    def verdict_line(self, *args):
        rc, out, err = self.ctl("stats", *args)
        self.assertEqual(rc, 0, err)
        return out.splitlines()[0]

    def expire_heartbeat(self, d):
        """The heartbeat of a process killed -9 runs out after 15 s: make that now."""
        redis_cmd(self.redis.port, "PEXPIRE", "{digest}:proc:" + proc_name(d), 1)
        wait_until(lambda: redis_cmd(self.redis.port, "EXISTS",
                                     "{digest}:proc:" + proc_name(d)) == 0, 5, "the expiry")

    def wait_procs(self, n):
        wait_until(lambda: len(self.ctl_json("procs")["procs"]) == n, 10, "%d live processes" % n)


class Backlog(CtlWorld):
    def test_a_backlog_with_no_workers_has_no_consumers(self):
        rids = self.post(3)
        s = self.ctl_json("stats")
        self.assertEqual(s["length"], 3)
        [g] = s["groups"]
        # A group made at 0 that never read has read nothing Redis can count (nil).
        self.assertEqual((g["name"], g["pending"], g["lag"], g["entries_read"]),
                         ("workers", 0, 3, None))
        self.assertEqual(s["consumers"], [])
        self.assertEqual(s["live_consumers"], 0)
        self.assertIsNone(s["oldest_pending"])
        # The three were counted in the minutes they were posted in, which may straddle a
        # minute's end (the two newest minutes), and in the hour.
        rates = s["rates"]
        self.assertEqual(rates["this_minute"]["enqueued"] + rates["last_minute"]["enqueued"], 3)
        self.assertEqual(rates["last_hour"]["enqueued"], 3)
        self.assertEqual(s["first_id"], redis_cmd(self.redis.port, "XRANGE", STREAM, "-", "+",
                                                  "COUNT", 1)[0][0])
        self.assertEqual(s["verdict"], "no consumers")
        # The api process is alive, but it reads nothing.
        [p] = s["procs"]
        self.assertEqual((p["role"], p["name"]), ("api", proc_name(self.api)))
        self.assertEqual(self.verdict_line(), "verdict: no consumers")
        # Each queued request shows where it waits.
        show = self.ctl_json("show", rids[0])
        self.assertEqual(show["status"], "queued")
        self.assertEqual(show["entry"]["id"], show["stream_id"])
        self.assertEqual(show["entry"]["fields"]["request_id"], rids[0])
        self.assertIsNone(show["pending"])
        self.assertEqual([t["step"] for t in show["timeline"]], ["queued"])
        # The admin route answers the same object.
        status, body = self.admin("GET", "/admin/queue")
        self.assertEqual(status, 200)
        self.assertEqual(sorted(body), sorted(s))
        self.assertEqual(body["verdict"], "no consumers")
        # The checklist: no worker, and nobody reads what waits (--scale-to-zero does not
        # excuse a backlog).
        for extra in ((), ("--scale-to-zero",)):
            rc, out, _ = self.ctl("check", *extra)
            self.assertEqual(rc, 1, out)
            self.assertIn("FAIL a live worker", out)
            self.assertIn("FAIL the group exists and is read", out)

    def test_a_backlog_with_lag_rising_between_minutes_is_growing(self):
        # A live consumer (a heartbeat as a worker writes it; no real worker, whose own lag
        # samples would race the ones laid out here), and the lag of two minutes rising.
        now = self.ctl_json("stats")["now_ms"]
        redis_cmd(self.redis.port, "HSET", "{digest}:proc:fake:1", "role", "worker",
                  "beat_ms", now)
        redis_cmd(self.redis.port, "PEXPIRE", "{digest}:proc:fake:1", 15000)
        redis_cmd(self.redis.port, "ZADD", PROCS, now, "fake:1")
        redis_cmd(self.redis.port, "XGROUP", "CREATECONSUMER", STREAM, "workers", "fake:1")
        m = now // 60000
        for minute, lag in ((m - 1, 2), (m, 9), (m + 1, 9)):  # m + 1: the test may cross it
            redis_cmd(self.redis.port, "HSET", "{digest}:minute:%d" % minute, "lag", lag)
        s = self.ctl_json("stats")
        self.assertEqual((s["verdict"], s["lag_trend"]["current"]), ("backlog growing", 9))
        self.assertEqual(self.verdict_line(), "verdict: backlog growing: lag 9, was 2 a minute "
                                              "before")
        # Falling again: healthy.
        for minute in (m, m + 1):
            redis_cmd(self.redis.port, "HSET", "{digest}:minute:%d" % minute, "lag", 1)
        self.assertEqual(self.verdict_line(), "verdict: healthy")


class Crashes(CtlWorld):
    stub_args = ("--upstream-delay", "3s")

    def test_a_killed_workers_entry_is_shown_held_by_a_dead_consumer_then_stuck(self):
        a = self.worker()
        self.wait_procs(2)
        [rid] = self.post(1)
        # Pending comes a script before processing: kill only once both are written.
        wait_until(lambda: self.pending() == 1 and hgetall(
            self.redis.port, "{digest}:req:" + rid).get("status") == "processing",
            10, "the job taken")
        a.proc.kill()
        a.proc.wait()
        # Its heartbeat still lives for up to 15 s; then it has expired.
        self.assertIn(proc_name(a), [p["name"] for p in self.ctl_json("procs")["procs"]])
        self.expire_heartbeat(a)
        procs = self.ctl_json("procs")
        self.assertEqual([p["name"] for p in procs["procs"]], [proc_name(self.api)])
        [dead] = procs["dead_consumers"]
        self.assertEqual((dead["name"], dead["group"], dead["pending"]),
                         (proc_name(a), "workers", 1))
        rc, out, _ = self.ctl("procs")
        self.assertRegex(out, r"%s\s+dead" % proc_name(a))
        pend = self.ctl_json("pending")
        self.assertEqual(pend["count"], 1)
        [e] = pend["entries"]
        self.assertEqual((e["request_id"], e["consumer"], e["consumer_alive"], e["deliveries"]),
                         (rid, proc_name(a), False, 1))
        show = self.ctl_json("show", rid)
        self.assertEqual(show["status"], "processing")
        self.assertEqual((show["pending"]["consumer"], show["pending"]["consumer_alive"]),
                         (proc_name(a), False))
        s = self.ctl_json("stats")
        self.assertEqual(s["consumers"][0]["alive"], False)
        self.assertEqual(s["verdict"], "no consumers")
        # A live worker that will not claim for a minute: the entry is stuck past twice 100 ms.
        b = self.worker(WORKER_CLAIM_IDLE_MS=60000)
        self.wait_procs(2)
        wait_until(lambda: self.ctl_json("stats")["live_consumers"] == 1, 10, "b reading")
        s = self.ctl_json("stats", "--claim-idle", "100ms")
        self.assertEqual(s["verdict"], "stuck")
        self.assertEqual(s["stuck"]["consumer"], proc_name(a))
        self.assertEqual(s["stuck_after_ms"], 200)
        self.assertRegex(self.verdict_line("--claim-idle", "100ms"),
                         r"^verdict: stuck: oldest pending \d+(ms|s)")
        # The environment says the same as the option.
        rc, out, _ = self.ctl("stats", env={"WORKER_CLAIM_IDLE_MS": "100"})
        self.assertTrue(out.startswith("verdict: stuck"), out)
        rc, out, _ = self.ctl("check", "--claim-idle", "100ms")
        self.assertEqual(rc, 1)
        self.assertIn("FAIL nothing stuck: %s held by %s" % (s["stuck"]["id"], proc_name(a)), out)
        # Pruning never takes a consumer holding work, nor a live one.
        pr = self.ctl_json("consumers", "--prune")
        self.assertEqual(pr["removed"], 0)
        self.assertIn(proc_name(a), [c["name"] for c in pr["consumers"]])
        # A worker that claims: the job is delivered, once; then the dead consumer can go.
        b.stop()
        self.worker(WORKER_CLAIM_IDLE_MS=500, WORKER_CLAIM_INTERVAL_MS=200)
        self.wait_status([rid], "delivered", 20)
        self.assertEqual(self.results().get(rid), 1)
        pr = self.ctl_json("consumers", "--prune")
        removed = [c["name"] for c in pr["consumers"] if c["removed"]]
        self.assertIn(proc_name(a), removed)

    def test_a_clean_exit_removes_the_heartbeat_and_a_kill_leaves_it_to_expire(self):
        w = self.worker()
        self.wait_procs(2)
        p = {q["name"]: q for q in self.ctl_json("procs")["procs"]}[proc_name(w)]
        self.assertEqual((p["role"], p["pid"], p["concurrency"], p["async_mode"]),
                         ("worker", w.proc.pid, 256, "true"))
        self.assertTrue(p["listen"].startswith("127.0.0.1:"))
        self.assertGreater(p["rss_bytes"], 1 << 20)
        name = proc_name(w)
        self.assertEqual(w.stop(), 0)
        self.assertEqual(redis_cmd(self.redis.port, "EXISTS", "{digest}:proc:" + name), 0)
        self.assertNotIn(name, redis_cmd(self.redis.port, "ZRANGE", PROCS, 0, -1))
        k = self.worker()
        self.wait_procs(2)
        k.proc.kill()
        k.proc.wait()
        ttl = redis_cmd(self.redis.port, "PTTL", "{digest}:proc:" + proc_name(k))
        self.assertTrue(0 < ttl <= 15000, ttl)


class DeadJobs(CtlWorld):
    def test_dead_jobs_of_two_reasons_then_requeued_and_delivered_once(self):
        self.worker(WORKER_MAX_ATTEMPTS=2)
        self.stub.inject(target="upstream", status=400, count=1)
        [failed] = self.post(1)
        self.wait_status([failed], "failed", 15)
        self.stub.inject(target="upstream", status=503, count=2)
        [dead] = self.post(1)
        self.wait_status([dead], "dead", 15)
        d = self.ctl_json("dead")
        self.assertEqual(d["count"], 2)
        by_id = {e["request_id"]: e for e in d["entries"]}
        self.assertEqual(list(by_id), [dead, failed])  # newest first
        self.assertIn("400", by_id[failed]["reason"])
        self.assertIn("gave up after 2 attempts", by_id[dead]["reason"])
        self.assertEqual(by_id[dead]["attempts"], "2")
        status, body = self.admin("GET", "/admin/dead?limit=1")
        self.assertEqual((status, body["count"], len(body["entries"])), (200, 2, 1))
        rc, out, _ = self.ctl("dead")
        self.assertIn("2 dead job(s)", out)
        s = self.ctl_json("stats")
        self.assertEqual(s["dead"], 2)
        hour = s["rates"]["last_hour"]
        self.assertEqual((hour["failed"], hour["dead"]), (1, 1))
        rc, out, _ = self.ctl("check", "--wide")
        self.assertEqual(rc, 1)
        self.assertIn("FAIL no dead jobs in the last hour: 2 in the last hour; newest: request "
                      + dead, out)
        show = self.ctl_json("show", dead)
        self.assertEqual(show["dead_entry"]["fields"]["request_id"], dead)
        self.assertEqual(show["timeline"][-1]["step"], "dead")
        # One back: delivered by the worker, once, and the record says it was requeued.
        r = self.ctl_json("requeue", dead)
        self.assertEqual(r["requestId"], dead)
        self.wait_status([dead], "delivered", 15)
        wait_until(lambda: self.results().get(dead) == 1, 5, "the result card")
        rec = self.record(dead)
        self.assertEqual((rec["requeues"], rec["stream_id"]), ("1", r["streamId"]))
        self.assertEqual(self.ctl_json("dead")["count"], 1)
        # Not dead any more, or never: one line, exit 1.
        for rid in (dead, "00000000-0000-4000-8000-000000000000", "not*an*id"):
            rc, out, err = self.ctl("requeue", rid)
            self.assertEqual((rc, out), (1, ""))
            self.assertEqual(len(err.splitlines()), 1, err)
        # All of them: asks first; no is no.
        rc, out, err = self.ctl("requeue", "--all-dead", stdin=b"n\n")
        self.assertEqual(rc, 1)
        self.assertIn("Requeue all 1 dead jobs?", err)
        self.assertEqual(self.ctl_json("dead")["count"], 1)
        rc, out, err = self.ctl("requeue", "--all-dead", stdin=b"y\n")
        self.assertEqual(rc, 0, err)
        self.assertIn("requeued 1 dead job(s)", out)
        self.wait_status([failed], "delivered", 15)
        wait_until(lambda: self.results().get(failed) == 1, 5, "the result card")
        self.assertEqual(self.ctl_json("requeue", "--all-dead", "--yes"), {"requeued": 0})

    def test_requeue_all_through_the_admin_route_needs_the_count(self):
        for i in range(3):
            redis_cmd(self.redis.port, "XADD", DEAD, "*", "request_id", "r-%d" % i, "reason", "x")
        status, body = self.admin("POST", "/admin/dead/requeue-all", b'{"count":2}')
        self.assertEqual(status, 409)
        self.assertEqual(body["error"]["code"], "conflict")
        self.assertEqual(redis_cmd(self.redis.port, "XLEN", DEAD), 3)
        for bad in (b"", b"{}", b'{"count":"3"}', b'{"count":-1}', b"[3]"):
            self.assertEqual(self.admin("POST", "/admin/dead/requeue-all", bad)[0], 400, bad)
        status, body = self.admin("POST", "/admin/dead/requeue-all", b'{"count":3}')
        self.assertEqual((status, body), (200, {"requeued": 3}))
        self.assertEqual(redis_cmd(self.redis.port, "XLEN", DEAD), 0)
        self.assertEqual(redis_cmd(self.redis.port, "XLEN", STREAM), 3)


class Consumers(CtlWorld):
    def test_prune_removes_the_idle_consumer_and_never_one_holding_work(self):
        for i in range(2):
            redis_cmd(self.redis.port, "XADD", STREAM, "*", "request_id", "r%d" % i)
        redis_cmd(self.redis.port, "XREADGROUP", "GROUP", "workers", "busy:1", "COUNT", 1,
                  "STREAMS", STREAM, ">")
        redis_cmd(self.redis.port, "XGROUP", "CREATECONSUMER", STREAM, "workers", "idle:2")
        listing = self.ctl_json("consumers")
        self.assertEqual(sorted((c["name"], c["pending"], c["alive"], c["removed"])
                                for c in listing["consumers"]),
                         [("busy:1", 1, False, False), ("idle:2", 0, False, False)])
        # --idle: only consumers idle at least that long.
        self.assertEqual(self.ctl_json("consumers", "--prune", "--idle", "1h")["removed"], 0)
        rc, out, _ = self.ctl("consumers", "--prune")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"busy:1 .*kept: holds 1 pending")
        self.assertRegex(out, r"idle:2 .*removed")
        self.assertIn("removed 1 of 2 consumer(s)", out)
        names = [fields(c)["name"] for c in
                 redis_cmd(self.redis.port, "XINFO", "CONSUMERS", STREAM, "workers")]
        self.assertEqual(names, ["busy:1"])
        self.assertEqual(redis_cmd(self.redis.port, "XPENDING", STREAM, "workers")[0], 1)


class Retention(CtlWorld):
    def old_entries(self, n_acked):
        """n_acked acknowledged entries from 1970, one pending after them, one unread after that."""
        for i in range(n_acked + 2):
            redis_cmd(self.redis.port, "XADD", STREAM, "%d-0" % (1000 + i), "request_id", "o%d" % i)
        redis_cmd(self.redis.port, "XREADGROUP", "GROUP", "workers", "ghost:1", "COUNT",
                  n_acked + 1, "STREAMS", STREAM, ">")
        redis_cmd(self.redis.port, "XACK", STREAM, "workers",
                  *["%d-0" % (1000 + i) for i in range(n_acked)])

    def test_trim_removes_acknowledged_entries_and_keeps_pending_and_unread(self):
        self.old_entries(3)
        t = self.ctl_json("trim", "--older-than", "1h")
        self.assertEqual((t["removed"], t["length"], t["older_than_ms"]), (3, 2, 3600000))
        self.assertEqual((t["kept"]["reason"], t["kept"]["id"], t["kept"]["consumer"]),
                         ("pending", "1003-0", "ghost:1"))
        self.assertEqual(t["kept"]["older_entries"], 2)
        ids = [e[0] for e in redis_cmd(self.redis.port, "XRANGE", STREAM, "-", "+")]
        self.assertEqual(ids, ["1003-0", "1004-0"])  # the pending one, the unread one
        rc, out, _ = self.ctl("trim", "--older-than", "1h")
        self.assertIn("removed 0 acknowledged entries older than 1h", out)
        self.assertIn("kept 2 older entries from 1003-0 on: it is pending in group workers "
                      "under ghost:1", out)
        # Once the pending one is acknowledged, the unread one holds the cut.
        redis_cmd(self.redis.port, "XACK", STREAM, "workers", "1003-0")
        t = self.ctl_json("trim", "--older-than", "1h")
        self.assertEqual((t["removed"], t["kept"]["reason"], t["kept"]["id"]),
                         (1, "unread", "1004-0"))
        # Without any group nothing goes: a group made later would read it all.
        redis_cmd(self.redis.port, "XGROUP", "DESTROY", STREAM, "workers")
        t = self.ctl_json("trim", "--older-than", "1s")
        self.assertEqual((t["removed"], t["kept"]["reason"]), (0, "no_group"))

    def test_a_trim_of_many_is_stepped(self):
        script = "for i = 0, 2499 do redis.call('XADD', KEYS[1], (1000 + i) .. '-0', 'f', 'v') end"
        redis_cmd(self.redis.port, "EVAL", script, 1, STREAM)
        redis_cmd(self.redis.port, "XGROUP", "SETID", STREAM, "workers", "$")  # all read
        t = self.ctl_json("trim", "--older-than", "1d")
        self.assertEqual((t["removed"], t["length"]), (2500, 0))
        self.assertGreaterEqual(t["steps"], 3)  # 1,000 entries a step at most

    def test_the_workers_trim_by_themselves_and_keep_what_is_pending(self):
        self.old_entries(3)
        for i in range(3):  # recent: only DEAD_MAX_LEN applies to them
            redis_cmd(self.redis.port, "XADD", DEAD, "*", "request_id", "d%d" % i)
        self.worker(STREAM_RETENTION="1", DEAD_MAX_LEN="2", DEAD_RETENTION="30d")
        rids = self.post(2)
        self.wait_status(rids, "delivered", 15)
        # Delivered, then a second older than STREAM_RETENTION: the workers cut up to the
        # pending entry only (MINID cuts a prefix), and hold the dead stream to 2.
        wait_until(lambda: redis_cmd(self.redis.port, "XRANGE", STREAM, "-", "+", "COUNT", 1)[0][0]
                   == "1003-0", 15, "the acknowledged old entries trimmed")
        wait_until(lambda: redis_cmd(self.redis.port, "XLEN", DEAD) == 2, 15, "DEAD_MAX_LEN")
        self.assertEqual(redis_cmd(self.redis.port, "XPENDING", STREAM, "workers")[0], 1)
        ids = [e[0] for e in redis_cmd(self.redis.port, "XRANGE", STREAM, "-", "+")]
        self.assertIn("1004-0", ids)  # after the pending one: MINID cuts a prefix only
        self.assertEqual(len(ids), 2 + len(rids))
        # The worker's steps sampled the lag into this minute.
        m = self.ctl_json("stats")["now_ms"] // 60000
        wait_until(lambda: redis_cmd(self.redis.port, "HEXISTS", "{digest}:minute:%d" % m, "lag")
                   or redis_cmd(self.redis.port, "HEXISTS", "{digest}:minute:%d" % (m + 1), "lag"),
                   10, "a lag sample")


class Check(CtlWorld):
    def test_check_passes_on_a_healthy_system_and_fails_on_each_broken_item(self):
        self.worker()
        [rid] = self.post(1)
        self.wait_status([rid], "delivered", 15)
        self.wait_procs(2)
        rc, out, err = self.ctl("check")
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(len(out.splitlines()), 8)
        self.assertTrue(all(line.startswith("ok ") for line in out.splitlines()[:7]), out)
        self.assertIn("check: all 7 items hold", out)
        c = self.ctl_json("check")
        self.assertEqual((c["ok"], c["passed"], c["total"]), (True, 7, 7))
        self.assertEqual([i["item"] for i in c["items"]],
                         ["a live worker", "the group exists and is read", "nothing stuck",
                          "recent audit records", "a job delivered end to end recently",
                          "no dead jobs in the last hour", "a Redis version digestd supports"])
        # The server's own version, on its line and alone in the JSON (KEDA's lag mode needs 7).
        info = redis_cmd(self.redis.port, "INFO", "server")
        version = re.search(r"^redis_version:([\d.]+)", info, re.M).group(1)
        self.assertEqual(c["redis_version"], version)
        self.assertIn("ok   a Redis version digestd supports: Redis %s (digestd and KEDA's lag "
                      "mode need 7.0 or later)" % version, out)

        def failing():
            rc, out, _ = self.ctl("check")
            self.assertEqual(rc, 1, out)
            return [line.split(":")[0][5:] for line in out.splitlines() if line.startswith("FAIL")]

        # The newest entry's audit record gone (expired, evicted): records are not kept.
        rec = hgetall(self.redis.port, "{digest}:req:" + rid)
        redis_cmd(self.redis.port, "DEL", "{digest}:req:" + rid)
        self.assertEqual(failing(), ["recent audit records"])
        redis_cmd(self.redis.port, "HSET", "{digest}:req:" + rid, *sum(rec.items(), ()))
        # Jobs went in an hour ago and none came out.
        m = self.ctl_json("stats")["now_ms"] // 60000
        for k in redis_cmd(self.redis.port, "KEYS", "{digest}:minute:*"):
            redis_cmd(self.redis.port, "DEL", k)
        redis_cmd(self.redis.port, "HSET", "{digest}:minute:%d" % (m - 5), "enqueued", 3)
        self.assertEqual(failing(), ["a job delivered end to end recently"])
        redis_cmd(self.redis.port, "HSET", "{digest}:minute:%d" % (m - 5), "delivered", 3)
        # A dead job in the last hour.
        redis_cmd(self.redis.port, "XADD", DEAD, "*", "request_id", "x", "reason", "boom")
        self.assertEqual(failing(), ["no dead jobs in the last hour"])
        redis_cmd(self.redis.port, "DEL", DEAD)
        self.assertEqual(self.ctl("check")[0], 0)
        # The workers gone: no live worker.
        for w in self.workers:
            w.stop()
        self.assertEqual(failing(), ["a live worker"])
        self.assertEqual(self.ctl("check", "--scale-to-zero")[0], 0)

    def test_check_fails_without_the_group(self):
        redis_cmd(self.redis.port, "XGROUP", "DESTROY", STREAM, "workers")
        rc, out, _ = self.ctl("check", "--scale-to-zero")
        self.assertEqual(rc, 1)
        self.assertIn("FAIL the group exists and is read: no consumer group 'workers'", out)


class History(CtlWorld):
    def test_history_counts_each_minute_the_same_for_admin_and_stats(self):
        self.worker()
        rids = self.post(2)
        self.wait_status(rids, "delivered", 15)
        status, h = self.admin("GET", "/admin/history?minutes=3")
        self.assertEqual(status, 200)
        self.assertEqual(len(h["minutes"]), 3)
        total = {k: sum(m[k] for m in h["minutes"]) for k in ("enqueued", "delivered")}
        self.assertEqual(total, {"enqueued": 2, "delivered": 2})
        last = h["minutes"][-1]
        self.assertEqual(last["minute"], h["now_ms"] // 60000)
        self.assertEqual(last["start_ms"], last["minute"] * 60000)
        for bad in ("0", "2881", "x", "1&minutes=y"):
            self.assertEqual(self.admin("GET", "/admin/history?minutes=" + bad)[0], 400, bad)
        self.assertEqual(self.admin("GET", "/admin/pending?limit=1001")[0], 400)
        s = self.ctl_json("stats")
        self.assertEqual(s["rates"]["last_hour"]["delivered"], 2)


class Fallbacks(unittest.TestCase):
    """A digest served while Redis is down is counted, and lands in its minute once Redis is
    back."""

    def setUp(self):
        self.redis = RedisServer().start()
        self.stub = Stub().start()
        self.d = Digestd(self.redis.url, self.stub.env()).start()

    def tearDown(self):
        try:
            self.assertEqual(self.d.stop(), 0, self.d.log())
        finally:
            self.d.cleanup()
            self.stub.stop()
            self.redis.stop()

    def test_a_fallback_while_redis_is_down_reaches_its_minute(self):
        self.redis.kill()
        wait_until(lambda: self.d.get("/readyz")[0] == 503, 10, "Redis seen down")
        a = activity(self.stub)
        status, _, body = self.d.post_json(a)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["mode"], "sync")
        metrics = self.d.get("/metrics")[2].decode()
        self.assertIn('digestd_requests_by_mode_total{mode="fallback"} 1', metrics)
        self.assertIn("digestd_sync_fallbacks_total 1", metrics)
        self.redis.start()
        wait_until(lambda: digestctl_json(self.redis.url, "stats")["rates"]["last_hour"]
                   ["fallback"] == 1, 15, "the fallback in its minute")


class Admin(CtlWorld):
    def test_admin_answers_are_digestctls(self):
        self.worker()
        [rid] = self.post(1)
        self.wait_status([rid], "delivered", 15)
        self.wait_procs(2)
        ignore = {"now_ms", "uptime_ms", "beat_age_ms", "beat_ms", "rss_bytes", "idle_ms",
                  "in_flight", "age_ms"}

        def strip(o):
            if isinstance(o, dict):
                return {k: strip(v) for k, v in o.items() if k not in ignore}
            if isinstance(o, list):
                return [strip(v) for v in o]
            return o

        for path, args in (("/admin/procs", ("procs",)), ("/admin/pending?limit=5",
                                                          ("pending", "--limit", "5")),
                           ("/admin/dead", ("dead",)), ("/admin/requests/" + rid, ("show", rid))):
            status, body = self.admin("GET", path)
            self.assertEqual(status, 200, path)
            self.assertEqual(strip(body), strip(self.ctl_json(*args)), path)
        status, body = self.admin("GET", "/admin/requests/" + rid)
        self.assertEqual(body["status"], "delivered")
        self.assertEqual([t["step"] for t in body["timeline"]],
                         ["queued", "processing", "fetched", "delivered"])
        missing = "/admin/requests/00000000-0000-4000-8000-000000000000"
        self.assertEqual(self.admin("GET", missing)[0], 404)


class CommandLine(CtlWorld):
    def test_json_anywhere_on_the_line_and_redis_and_prefix_options(self):
        a = digestctl("redis://127.0.0.1:1/0", "--json", "stats", "--redis", self.redis.url)
        b = digestctl("redis://127.0.0.1:1/0", "stats", "--redis=%s" % self.redis.url, "--json")
        self.assertEqual((a[0], b[0]), (0, 0), a[2] + b[2])
        self.assertEqual(sorted(json.loads(a[1])), sorted(json.loads(b[1])))
        # Another prefix is another deployment: nothing of ours there.
        redis_cmd(self.redis.port, "XADD", "{other}:requests", "*", "request_id", "x")
        self.assertEqual(self.ctl_json("stats", "--prefix", "other")["length"], 1)
        self.assertEqual(self.ctl_json("stats", env={"DIGEST_PREFIX": "other"})["length"], 1)
        # --config reads the same file digestd reads.
        path = os.path.join(self.api.dir, "ctl.conf")
        with open(path, "w") as f:
            f.write("DIGEST_PREFIX=other\n")
        self.assertEqual(self.ctl_json("stats", "--config", path)["length"], 1)

    def test_an_unreachable_redis_is_one_line_and_exit_1(self):
        port = free_port()
        for args in (("stats",), ("procs",), ("pending",), ("show", "abc"), ("dead",),
                     ("requeue", "abc"), ("requeue", "--all-dead", "--yes"),
                     ("trim", "--older-than", "1h"), ("consumers", "--prune"), ("check",),
                     ("watch",), ("stats", "--json")):
            rc, out, err = digestctl("redis://127.0.0.1:%d/0" % port, *args)
            self.assertEqual((rc, out), (1, ""), args)
            self.assertEqual(len(err.splitlines()), 1, err)
            self.assertIn("127.0.0.1:%d" % port, err)
        rc, _, err = digestctl("unix:///nonexistent/redis.sock", "stats")
        self.assertEqual(rc, 1)
        self.assertIn("unix:/nonexistent/redis.sock", err)

    def test_bad_arguments_exit_2_with_one_reason(self):
        for args, why in ((), "no command"), (("frobnicate",), "unknown command"), \
                (("stats", "--frob"), "unknown option"), (("pending", "--limit", "0"), "--limit"), \
                (("dead", "--limit", "x"), "--limit"), (("pending", "--limit"), "needs a value"), \
                (("trim",), "--older-than"), (("trim", "--older-than", "soon"), "--older-than"), \
                (("show",), "request id"), (("requeue",), "request id or --all-dead"), \
                (("requeue", "x", "--all-dead"), "request id or --all-dead"), \
                (("consumers", "--idle", "1m"), "--idle goes with --prune"), \
                (("stats", "--limit", "3"), "does not apply"), (("stats", "extra"), "unexpected"), \
                (("stats", "--claim-idle", "0"), "--claim-idle"):
            rc, out, err = self.ctl(*args)
            self.assertEqual(rc, 2, (args, out, err))
            self.assertIn(why, err.splitlines()[0], args)
            self.assertEqual(out, "")
        rc, _, err = digestctl("http://nope", "stats")
        self.assertEqual(rc, 2)
        self.assertTrue(err.startswith("digestctl: REDIS_URL:"), err)
        rc, _, err = self.ctl("stats", "--redis", "http://nope")
        self.assertEqual(rc, 2)
        self.assertTrue(err.startswith("digestctl: --redis:"), err)

    def test_help_and_version(self):
        rc, out, _ = self.ctl("--help")
        self.assertEqual(rc, 0)
        for word in ("stats", "watch", "procs", "pending [--limit N]", "show <request-id>",
                     "dead [--limit N]", "requeue <request-id>", "--all-dead [--yes]",
                     "trim --older-than DURATION", "consumers [--prune] [--idle DURATION]",
                     "check [--scale-to-zero]", "--json", "--redis URL", "--prefix P",
                     "--claim-idle DURATION", "REDIS_URL=redis://127.0.0.1:6379/0",
                     "DIGEST_PREFIX=digest", "WORKER_CLAIM_IDLE_MS=60000"):
            self.assertIn(word, out)
        self.assertTrue(all(len(line) <= 100 for line in out.splitlines()))
        rc, out, _ = self.ctl("stats", "--version")
        self.assertEqual((rc, out.split()[0]), (0, "digestctl"))

    def test_human_output_stays_within_100_columns(self):
        redis_cmd(self.redis.port, "XADD", STREAM, "*", "request_id", "r")
        redis_cmd(self.redis.port, "XREADGROUP", "GROUP", "workers", "c" * 150, "COUNT", 1,
                  "STREAMS", STREAM, ">")
        for args in (("stats",), ("pending",), ("procs",), ("consumers",)):
            rc, out, _ = self.ctl(*args)
            self.assertEqual(rc, 0)
            self.assertTrue(all(len(line) <= 100 for line in out.splitlines()), (args, out))
        rc, out, _ = self.ctl("consumers", "--wide")
        self.assertIn("c" * 150, out)


@unittest.skipUnless(shutil.which("script"), "script (util-linux) is needed for a terminal")
class Watch(CtlWorld):
    def test_watch_redraws_and_quits_on_q(self):
        out_path = os.path.join(self.api.dir, "watch.out")
        env = dict(os.environ, REDIS_URL=self.redis.url)
        prefix = " ".join(os.environ.get("TEST_PREFIX", "").split())
        with open(out_path, "wb") as out:
            p = subprocess.Popen(["script", "-qfec", "%s %s watch" % (prefix, DIGESTCTL_BIN),
                                  "/dev/null"], stdin=subprocess.PIPE, stdout=out,
                                 stderr=subprocess.STDOUT, env=env)

            def frames():
                with open(out_path, "rb") as f:
                    return f.read().count(b"\x1b[H\x1b[2J")

            try:
                wait_until(lambda: frames() >= 2, 15, "two refreshes")
                p.stdin.write(b"q")
                p.stdin.flush()
                self.assertEqual(p.wait(10), 0)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                p.stdin.close()
        with open(out_path, "rb") as f:
            text = f.read()
        self.assertIn(b"verdict: no consumers", text)
        self.assertIn(b"q quits", text)
        # The terminal is given back: cursor shown, normal screen.
        self.assertTrue(text.rstrip().endswith(b"\x1b[?25h\x1b[?1049l"), text[-40:])


@unittest.skipUnless(shutil.which("promtool"), "promtool (Debian: prometheus) is not installed")
class Promtool(CtlWorld):
    FAMILIES = ("digestd_requests_by_mode_total", "digestd_sync_fallbacks_total",
                "digestd_build_info", "process_")

    def test_promtool_finds_nothing_in_the_new_families(self):
        w = self.worker()
        for d in (self.api, w):
            body = d.get("/metrics")[2]
            r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
            complaints = [line for line in (r.stdout + r.stderr).decode().splitlines()
                          if line.startswith(self.FAMILIES)]
            self.assertEqual(complaints, [])
            for family in self.FAMILIES[:3]:
                self.assertIn("# HELP " + family, body.decode())


if __name__ == "__main__":
    unittest.main()
