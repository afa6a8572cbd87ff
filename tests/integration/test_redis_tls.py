"""Redis over TLS with an ACL user (SPEC §2: rediss://, REDIS_TLS_*), end to
end: Debian's redis-server listening on a TLS port only (--port 0), with
certificates this test makes with `openssl` (a CA, a server certificate for
localhost and 127.0.0.1, a client certificate, and a second CA that signed
nothing of ours), the default user disabled and one ACL user. digestd (api
and worker) and digestctl reach it only as that user over TLS; a wrong CA
is refused with one clear log line; a Redis restart is recovered; mutual
TLS works with a client certificate and is refused without one."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import (DIGESTD_BIN, REDIS_BIN, Digestd, Stub, digestctl, digestctl_json, free_port,
                     load_fixture, wait_until, _encode, _read_reply, RespError)

USER, PASSWORD = "digest-app", "s3cret:with@odd/chars"
URL_PASSWORD = "s3cret%3Awith%40odd%2Fchars"  # the same, %XX-escaped in the URL
STREAM = "{digest}:requests"


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(d):
    """ca.crt signs server.crt (localhost, 127.0.0.1) and client.crt; other-ca.crt signs nothing."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2",
                "-subj", "/CN=digestd test " + ca, cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for who, cn in (("server", "localhost"), ("client", "digestd-client")):
        openssl("req", *ec, "-keyout", who + ".key", "-out", who + ".csr", "-subj", "/CN=" + cn,
                cwd=d)
        openssl("x509", "-req", "-in", who + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", who + ".crt", "-days", "2", "-extfile", who + ".ext",
                cwd=d)
    return {k: os.path.join(d, k) for k in os.listdir(d)}


class TlsRedis:
    """redis-server on a TLS port only, with the default user off and one ACL user."""

    def __init__(self, certs, auth_clients="optional"):
        self.certs = certs
        self.auth_clients = auth_clients
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="digestd-redis-tls-")
        self.proc = None

    def start(self):
        c = self.certs
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1", "127.0.0.2",
             "--tls-cert-file", c["server.crt"], "--tls-key-file", c["server.key"],
             "--tls-ca-cert-file", c["ca.crt"], "--tls-auth-clients", self.auth_clients,
             "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
             "--logfile", os.path.join(self.dir, "redis.log"),
             "--user", "default", "off",
             "--user", USER, "on", ">" + PASSWORD, "~*", "&*", "+@all"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.ping, 10, "redis-server over TLS")
        return self

    def ping(self):
        try:
            return self.cmd("PING") == "PONG"
        except (OSError, ConnectionError):
            return False

    def cmd(self, *args):
        """One command over TLS as the ACL user, the test's own view of Redis."""
        ctx = ssl.create_default_context(cafile=self.certs["ca.crt"])
        ctx.load_cert_chain(self.certs["client.crt"], self.certs["client.key"])
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(_encode(("AUTH", USER, PASSWORD)) + _encode(args))
                f = s.makefile("rb")
                auth, reply = _read_reply(f), _read_reply(f)
        if isinstance(auth, RespError):
            raise auth
        if isinstance(reply, RespError):
            raise reply
        return reply

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, host="127.0.0.1", user=USER, password=URL_PASSWORD):
        return "rediss://%s:%s@%s:%d/0" % (user, password, host, self.port)


def log_lines(d):
    out = []
    for line in d.log().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


class TlsWorld(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="digestd-certs-")
        cls.certs = make_certs(cls.certdir)
        cls.redis = TlsRedis(cls.certs)
        cls.stub = Stub()
        try:
            cls.redis.start()
            cls.stub.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stub.stop()
        cls.redis.stop()
        shutil.rmtree(cls.certdir, ignore_errors=True)

    def setUp(self):
        self.procs = []

    def tearDown(self):
        try:
            for d in self.procs:
                if d.proc and d.proc.poll() is None:
                    rc = d.stop()
                    self.assertEqual(rc, 0, d.log())
        finally:
            for d in self.procs:
                d.cleanup()

    def digestd(self, role, url=None, wait_ready=True, **env):
        e = self.stub.env()
        e["REDIS_TLS_CA_FILE"] = self.certs["ca.crt"]
        e.update(env)
        d = Digestd(url or self.redis.url(), e, args=["--role", role])
        self.procs.append(d)
        return d.start(wait_ready=wait_ready)

    def activity(self, n):
        a = load_fixture("teams-personal-chat.json")
        a["serviceUrl"] = self.stub.service_url
        a["conversation"]["id"] = "%s-tls%d" % (a["conversation"]["id"], n)
        a["id"] = "tls-test-%d-%d-%d" % (os.getpid(), n, time.monotonic_ns())
        a["text"] = "digest advisors"
        a.pop("entities", None)
        return a

    def digest_flows(self, api, n):
        """One digest posted to api is delivered by a worker: its result card reaches the stub."""
        status, _, body = api.post_json(self.activity(n))
        self.assertEqual(status, 202, body)
        rid = json.loads(body)["requestId"]
        wait_until(lambda: self.redis.cmd("HGET", "{digest}:req:" + rid, "status") == "delivered",
                   20, "request %s delivered" % rid)
        wait_until(lambda: any(m["request_id"] == rid and m["card"] == "result"
                               for m in self.stub.outbox()), 10, "result card of " + rid)
        return rid


class TestRedisTls(TlsWorld):
    def test_a_digest_flows_end_to_end_over_tls_as_an_acl_user(self):
        api = self.digestd("api")
        # The worker names the host: SNI and the DNS name check; the api, the IP SAN.
        self.digestd("worker", url=self.redis.url(host="localhost"))
        rid = self.digest_flows(api, 1)
        self.assertEqual(self.redis.cmd("XLEN", STREAM), 1)
        self.assertTrue(self.redis.cmd("HGET", "{digest}:req:" + rid, "result_activity_id"))
        for d in self.procs:
            self.assertNotIn(PASSWORD, d.log())
            self.assertNotIn(URL_PASSWORD, d.log())
            self.assertIn("connected to rediss://", d.log())

    def test_digestctl_stats_over_tls(self):
        api = self.digestd("api")
        self.digestd("worker")
        self.digest_flows(api, 2)
        env = {"REDIS_TLS_CA_FILE": self.certs["ca.crt"]}
        stats = digestctl_json(self.redis.url(host="localhost"), "stats", env=env)
        self.assertGreaterEqual(stats["length"], 1)
        rc, out, err = digestctl(self.redis.url(), "stats", env=env)
        self.assertEqual(rc, 0, err)
        self.assertIn("stream", out)
        # A wrong password: one line naming the address and what Redis said.
        rc, out, err = digestctl(self.redis.url(password="wrong"), "stats", env=env)
        self.assertEqual((rc, out), (1, ""))
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn("rediss://127.0.0.1:%d" % self.redis.port, err)
        self.assertIn("WRONGPASS", err)
        # The system store does not know our CA.
        rc, _, err = digestctl(self.redis.url(), "stats")
        self.assertEqual(rc, 1)
        self.assertIn("certificate verify failed", err)

    def test_a_wrong_ca_is_refused_with_one_clear_line(self):
        d = self.digestd("api", wait_ready=False, REDIS_TLS_CA_FILE=self.certs["other-ca.crt"],
                         LOG_LEVEL="info")
        where = "rediss://127.0.0.1:%d" % self.redis.port
        wait_until(lambda: "certificate verify failed" in d.log(), 10, "the refusal in the log")
        time.sleep(1.5)  # several more attempts with backoff
        self.assertEqual(d.get("/readyz")[0], 503)
        hits = [l for l in log_lines(d) if "certificate verify failed" in l.get("msg", "")]
        self.assertEqual(len(hits), 1, d.log())  # retries are logged at debug only
        self.assertEqual(hits[0]["level"], "warn")
        self.assertIn(where, hits[0]["msg"])
        self.assertIn("redis queue: cannot connect", hits[0]["msg"])
        self.assertNotIn("connected to", d.log())

    def test_a_certificate_for_another_host_is_refused(self):
        # The certificate names localhost and 127.0.0.1; Redis listens on 127.0.0.2 too.
        url = self.redis.url(host="127.0.0.2")
        rc, _, err = digestctl(url, "stats", env={"REDIS_TLS_CA_FILE": self.certs["ca.crt"]})
        self.assertEqual(rc, 1)
        self.assertIn("certificate verify failed", err)

    def test_a_redis_restart_over_tls_is_recovered(self):
        api = self.digestd("api")
        self.digestd("worker")
        self.digest_flows(api, 3)
        self.redis.kill()
        wait_until(lambda: api.get("/readyz")[0] == 503, 10, "api not ready while Redis is away")
        time.sleep(0.5)
        self.redis.start()  # same port, same certificates
        wait_until(lambda: api.get("/readyz")[0] == 200, 15, "api ready again")
        self.digest_flows(api, 4)
        for d in self.procs:
            self.assertIn("reconnected to rediss://", d.log())


class TestMutualTls(TlsWorld):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.mredis = TlsRedis(cls.certs, auth_clients="yes").start()

    @classmethod
    def tearDownClass(cls):
        cls.mredis.stop()
        super().tearDownClass()

    def test_a_client_certificate_is_presented_when_configured(self):
        url = self.mredis.url()
        d = self.digestd("api", url=url, REDIS_TLS_CERT_FILE=self.certs["client.crt"],
                         REDIS_TLS_KEY_FILE=self.certs["client.key"])
        self.assertEqual(d.get("/readyz")[0], 200)
        env = {"REDIS_TLS_CA_FILE": self.certs["ca.crt"],
               "REDIS_TLS_CERT_FILE": self.certs["client.crt"],
               "REDIS_TLS_KEY_FILE": self.certs["client.key"]}
        self.assertEqual(digestctl_json(url, "stats", env=env)["length"], 0)

    def test_without_a_client_certificate_the_server_refuses(self):
        d = self.digestd("api", url=self.mredis.url(), wait_ready=False)
        wait_until(lambda: "redis queue: cannot connect" in d.log(), 10, "the refusal")
        time.sleep(0.5)
        self.assertEqual(d.get("/readyz")[0], 503)
        rc, _, err = digestctl(self.mredis.url(), "stats",
                               env={"REDIS_TLS_CA_FILE": self.certs["ca.crt"]})
        self.assertEqual(rc, 1)
        self.assertEqual(len(err.splitlines()), 1, err)

    def test_a_bad_tls_file_stops_the_start_naming_the_variable(self):
        for var, value, why in (("REDIS_TLS_CA_FILE", "/nonexistent/ca.pem", "cannot read"),
                                ("REDIS_TLS_KEY_FILE", self.certs["other-ca.key"],
                                 "key values mismatch"),
                                ("REDIS_TLS_CA_FILE", self.certs["server.ext"],
                                 "no usable CA certificate")):
            env = dict(os.environ, REDIS_URL=self.mredis.url(), BOT_AUTH="off",
                       DIGEST_LISTEN="127.0.0.1:%d" % free_port(),
                       REDIS_TLS_CERT_FILE=self.certs["client.crt"],
                       REDIS_TLS_KEY_FILE=self.certs["client.key"])
            env[var] = value
            r = subprocess.run([DIGESTD_BIN], env=env,
                               capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 2, (var, r.stderr))
            err = r.stderr.decode()
            self.assertTrue(err.startswith(var + ":"), err)
            self.assertIn(why, err)
            self.assertNotIn(PASSWORD, err)


if __name__ == "__main__":
    unittest.main()
