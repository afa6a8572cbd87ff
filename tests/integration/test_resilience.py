"""digestd under trouble: Redis dying and coming back, slow clients, too
many connections, bad configuration, and shutdown."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import (DIGESTD_BIN, Digestd, RedisServer, hgetall, load_fixture, redis_cmd,
                     wait_until)


def activity(i, text="digest advisors"):
    a = load_fixture("teams-personal-chat.json")
    a["id"] = "act-%s" % i
    a["text"] = text
    return a


class RedisOutage(unittest.TestCase):
    def setUp(self):
        self.redis = RedisServer().start()
        self.d = Digestd(self.redis.url).start()

    def tearDown(self):
        try:
            self.assertEqual(self.d.stop(), 0, self.d.log())
        finally:
            self.d.cleanup()
            self.redis.stop()

    def test_restart_redis_while_running(self):
        self.assertEqual(self.d.post_json(activity("before"))[0], 202)

        self.redis.kill()
        wait_until(lambda: self.d.get("/readyz")[0] == 503, 10, "readyz to report Redis down")
        t0 = time.monotonic()
        for i in range(5):
            # Anything but a digest is refused so the channel retries it later.
            status, headers, body = self.d.post_json(activity("down-%d" % i, "help"))
            self.assertEqual(status, 503)
            self.assertIn("retry-after", headers)
            self.assertIn("error", json.loads(body))
        # A 503 is fast: nobody waits for a dead Redis.
        self.assertLess(time.monotonic() - t0, 5)
        a = activity("down-conv")
        a["type"] = "conversationUpdate"
        self.assertEqual(self.d.post_json(a)[0], 503)
        # A digest takes the synchronous path instead; with no upstream
        # reachable here it fails with 502 (test_outbound covers success).
        self.assertEqual(self.d.post_json(activity("down-digest"))[0], 502)

        self.redis.start()  # same port, empty data set
        wait_until(lambda: self.d.post_json(activity("after"))[0] == 202, 15,
                   "normal service after Redis came back")
        # Nothing of the refused requests was written, the stream and group exist again.
        entries = redis_cmd(self.redis.port, "XRANGE", "{digest}:requests", "-", "+")
        acts = [dict(zip(e[1][0::2], e[1][1::2]))["activity_id"] for e in entries]
        self.assertEqual(acts, ["act-after"])
        self.assertEqual(redis_cmd(self.redis.port, "KEYS", "{digest}:dedup:*"),
                         ["{digest}:dedup:msteams:%s:act-after"
                          % load_fixture("teams-personal-chat.json")["conversation"]["id"]])
        groups = redis_cmd(self.redis.port, "XINFO", "GROUPS", "{digest}:requests")
        self.assertEqual(dict(zip(groups[0][0::2], groups[0][1::2]))["name"], "workers")
        # A digest refused during the outage goes through now, once.
        self.assertEqual(self.d.post_json(activity("down-digest"))[0], 202)
        self.assertEqual(self.d.post_json(activity("down-digest"))[0], 200)
        self.assertIn("digestd_redis_reconnects_total", self.d.get("/metrics")[2].decode())

    def test_frozen_redis_times_out_with_503(self):
        self.redis.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            # A timeout is ambiguous (the job may be stored): 503, and the
            # channel's retry will meet the dedup key.
            status, headers, _ = self.d.post_json(activity("frozen"))
            self.assertEqual(status, 503)
            self.assertIn("retry-after", headers)
            self.assertLess(time.monotonic() - t0, 10)
        finally:
            self.redis.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: self.d.post_json(activity("thawed"))[0] in (200, 202), 15,
                   "service after Redis thawed")


class SlowClients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.d = Digestd(cls.redis.url, {"HEADER_TIMEOUT_MS": "1000", "IDLE_TIMEOUT_MS": "1500",
                                        "MAX_CONNECTIONS": "50"}).start()

    @classmethod
    def tearDownClass(cls):
        try:
            assert cls.d.stop() == 0, cls.d.log()
        finally:
            cls.d.cleanup()
            cls.redis.stop()

    def test_one_byte_a_second_is_cut_off_while_others_are_served(self):
        request = b"POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        closed_after = []

        def slow():
            t0 = time.monotonic()
            try:
                for b in request:
                    s.sendall(bytes([b]))
                    time.sleep(0.25)
                    if time.monotonic() - t0 > 8:
                        break
                # Anything left to read should be the end of the connection.
                s.recv(1)
            except OSError:
                pass
            closed_after.append(time.monotonic() - t0)

        t = threading.Thread(target=slow)
        t.start()
        # A normal client is served while the slow one dribbles.
        for i in range(5):
            status, _, _ = self.d.post_json(activity("normal-%d" % i))
            self.assertEqual(status, 202)
        t.join(15)
        s.close()
        self.assertEqual(len(closed_after), 1)
        self.assertLess(closed_after[0], 5, "slow client was not cut off by HEADER_TIMEOUT_MS")

    def test_idle_keep_alive_connection_is_closed(self):
        with socket.create_connection(("127.0.0.1", self.d.port), timeout=10) as s:
            t0 = time.monotonic()
            self.assertEqual(s.recv(1), b"")
            self.assertLess(time.monotonic() - t0, 6)

    def test_connections_over_the_cap_get_503(self):
        held = []
        try:
            for _ in range(50):
                held.append(socket.create_connection(("127.0.0.1", self.d.port), timeout=10))
            time.sleep(0.2)
            extra = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
            data = extra.recv(4096)
            extra.close()
            self.assertTrue(data.startswith(b"HTTP/1.1 503"), data)
        finally:
            for h in held:
                h.close()
        wait_until(lambda: self.d.get("/healthz")[0] == 200, 5, "service after the flood")


class Lifecycle(unittest.TestCase):
    def test_sigterm_with_requests_in_flight_exits_zero(self):
        redis = RedisServer().start()
        d = Digestd(redis.url).start()
        try:
            for i in range(20):
                self.assertEqual(d.post_json(activity("life-%d" % i))[0], 202)
            held = socket.create_connection(("127.0.0.1", d.port), timeout=10)  # idle conn
            self.assertEqual(d.stop(signal.SIGTERM), 0, d.log())
            held.close()
            self.assertIn("stopped cleanly", d.log())
        finally:
            d.cleanup()
            redis.stop()

    def test_sigint_exits_zero_even_with_redis_down(self):
        redis = RedisServer().start()
        d = Digestd(redis.url).start()
        try:
            redis.kill()
            time.sleep(0.5)
            self.assertEqual(d.stop(signal.SIGINT), 0, d.log())
        finally:
            d.cleanup()
            redis.stop()


class Configuration(unittest.TestCase):
    def run_digestd(self, env, args=()):
        e = dict(os.environ)
        e.update({"BOT_AUTH": "off", "DIGEST_LISTEN": "127.0.0.1:0"})
        e.update(env)
        return subprocess.run([DIGESTD_BIN] + list(args), env=e, capture_output=True, timeout=20)

    def test_bad_values_exit_2_naming_the_variable(self):
        for name, value in (("DIGEST_LISTEN", "nonsense"), ("REDIS_URL", "http://x"),
                            ("MAX_BODY_BYTES", "12abc"), ("USE_ASYNC_DIGEST", "maybe"),
                            ("LOG_LEVEL", "loud"), ("WORKER_CONCURRENCY", "0")):
            with self.subTest(name=name):
                r = self.run_digestd({name: value})
                self.assertEqual(r.returncode, 2, r.stderr)
                lines = r.stderr.decode().strip().splitlines()
                self.assertEqual(len(lines), 1, lines)
                self.assertIn(name, lines[0])

    def test_port_in_use_exits_1_naming_the_variable(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            r = self.run_digestd({"DIGEST_LISTEN": "127.0.0.1:%d" % s.getsockname()[1]})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("DIGEST_LISTEN", r.stderr.decode())

    def test_bad_role_and_argument(self):
        self.assertEqual(self.run_digestd({}, ["--role", "boss"]).returncode, 2)
        self.assertEqual(self.run_digestd({}, ["--frobnicate"]).returncode, 2)

    def test_jwt_without_an_app_id_exits_2(self):
        # Every token's aud must equal MICROSOFT_APP_ID: without one nothing could pass.
        r = self.run_digestd({"BOT_AUTH": "jwt", "MICROSOFT_APP_ID": ""})
        self.assertEqual(r.returncode, 2)
        self.assertIn("MICROSOFT_APP_ID", r.stderr.decode())
        self.assertEqual(len(r.stderr.decode().strip().splitlines()), 1)

    def test_help_and_version(self):
        r = self.run_digestd({}, ["--help"])
        self.assertEqual(r.returncode, 0)
        out = r.stdout.decode()
        for name in ("DIGEST_LISTEN", "REDIS_URL", "SERVICE_URL_ALLOW", "SHUTDOWN_GRACE_MS",
                     "--role", "--config"):
            self.assertIn(name, out)
        r = self.run_digestd({}, ["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith(b"digestd "))

    def test_config_file(self):
        redis = RedisServer().start()
        d = Digestd(redis.url)
        path = os.path.join(d.dir, "digestd.conf")
        with open(path, "w") as f:
            f.write("# test\nDIGEST_PREFIX=other\nDIGEST_AUDIENCES=advisors,ops\n")
        d.args = ["--config", path]
        try:
            d.start()
            a = activity("cfg", "digest ops")
            self.assertEqual(d.post_json(a)[0], 202)
            self.assertEqual(redis_cmd(redis.port, "XLEN", "{other}:requests"), 1)
            self.assertEqual(d.stop(), 0)
        finally:
            d.cleanup()
            redis.stop()

    def test_worker_role_serves_health_but_not_the_webhook(self):
        redis = RedisServer().start()
        d = Digestd(redis.url, args=["--role", "worker"])
        try:
            d.start()
            self.assertEqual(d.post_json(activity("w"))[0], 404)
            self.assertEqual(d.get("/metrics")[0], 200)
            self.assertEqual(d.stop(), 0)
        finally:
            d.cleanup()
            redis.stop()


if __name__ == "__main__":
    unittest.main()
