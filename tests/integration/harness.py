"""Process harness for digestd's integration tests.

Starts real processes on loopback and stops them by the pid it started,
never by name (STYLE rule 18): a private redis-server on a free port, and
the digestd binary under test (DIGESTD_BIN). Also a minimal RESP client, so
the tests read Redis exactly as it is, with no client library in between.

Every digestd runs with BOT_AUTH=jwt unless a test asks for auth="off": its
keys come from a digest-stub (the class's own, or a private one started for
it), and post_json signs each activity with a token minted by
`digest-stub token` for that activity's serviceUrl (cached, so 200 clients
cost one process, not 200).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

DIGESTD_BIN = os.environ.get("DIGESTD_BIN", "../../build/digestd")
FIXTURES_DIR = os.environ.get("FIXTURES_DIR", "../fixtures")
REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


# --- RESP --------------------------------------------------------------

def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RespError(Exception):
    pass


def _read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RespError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_read_reply(f) for _ in range(n)]
    raise ValueError("bad RESP line %r" % line)


def redis_cmd(port, *args, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(_encode(args))
        f = s.makefile("rb")
        reply = _read_reply(f)
    if isinstance(reply, RespError):
        raise reply
    return reply


def hgetall(port, key):
    flat = redis_cmd(port, "HGETALL", key)
    return dict(zip(flat[0::2], flat[1::2]))


def data_keys(port):
    """Every key but the processes' own heartbeats ({P}:procs, {P}:proc:*), which every
    digestd writes whatever it is sent: what requests and jobs have left in Redis."""
    return sorted(k for k in redis_cmd(port, "KEYS", "*")
                  if not k.startswith(("{digest}:proc:", "{digest}:procs")))


# --- processes ---------------------------------------------------------

class RedisServer:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="digestd-redis-")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
             "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: redis_cmd(self.port, "PING") == "PONG", 10, "redis-server")
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port


# --- tokens ----------------------------------------------------------------

# A service URL for bodies that name none (or are not JSON at all).
DEFAULT_SERVICE_URL = "https://smba.trafficmanager.net/amer/"
# openid URL of each running stub -> its key directory, so a digestd given a
# stub's env() alone can still sign for it.
_KEY_DIRS = {}
_TOKENS = {}


def mint_token(key_dir, service_url, *options, app_id=None, cache=True):
    """A token from `digest-stub token` signed with the key in key_dir.

    options are extra command-line options (e.g. "--aud", "x"). Tokens are
    cached per (key, app id, service URL, options) unless cache is False
    (use that for tokens whose point is their time)."""
    app_id = app_id or APP_ID
    k = (key_dir, app_id, service_url, tuple(options))
    if cache and k in _TOKENS:
        return _TOKENS[k]
    cmd = [STUB_BIN, "token", "--key-dir", key_dir, "--app-id", app_id]
    if service_url is not None:
        cmd += ["--service-url", service_url]
    r = subprocess.run(cmd + list(options), capture_output=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("digest-stub token %s failed: %s" % (options, r.stderr.decode()))
    tok = r.stdout.decode().strip()
    if cache:
        _TOKENS[k] = tok
    return tok


def service_url_of(obj_or_bytes):
    """The serviceUrl an activity names, or DEFAULT_SERVICE_URL when it names
    none that digest-stub could sign (only http(s) URLs)."""
    obj = obj_or_bytes
    if isinstance(obj, bytes):
        try:
            obj = json.loads(obj)
        except ValueError:
            return DEFAULT_SERVICE_URL
    url = obj.get("serviceUrl") if isinstance(obj, dict) else None
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return url
    return DEFAULT_SERVICE_URL


class Digestd:
    """One digestd process. env overrides the test defaults.

    auth="jwt" (the default) checks tokens against the stub whose env() is
    in env (BOT_OPENID_URL), or against a private stub started for this
    digestd; auth="off" runs it unauthenticated (auth-off tests only)."""

    def __init__(self, redis_url, env=None, args=None, auth="jwt"):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="digestd-")
        self.log_path = os.path.join(self.dir, "digestd.log")
        self.env = dict(os.environ)
        self.env.update({
            "DIGEST_LISTEN": "127.0.0.1:%d" % self.port,
            "REDIS_URL": redis_url,
            "BOT_AUTH": auth,
            "LOG_LEVEL": "info",
            # The sandbox's LeakSanitizer needs ptrace-free mode in CI containers.
            "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "detect_leaks=1"),
        })
        self.env.update(env or {})
        # --role api unless asked: the webhook tests look at jobs as queued,
        # before any worker takes them; the worker tests ask for a worker.
        self.args = list(args) if args is not None else ["--role", "api"]
        self.proc = None
        self.auth_stub = None  # the private stub, when this digestd has one
        self.key_dir = None

    @property
    def jwt(self):
        return self.env.get("BOT_AUTH") == "jwt"

    def _setup_auth(self):
        if not self.jwt:
            return
        self.env.setdefault("MICROSOFT_APP_ID", APP_ID)
        openid = self.env.get("BOT_OPENID_URL")
        if openid is None:
            if self.auth_stub is None:
                self.auth_stub = Stub().start()
            openid = self.auth_stub.openid_url
            self.env["BOT_OPENID_URL"] = openid
        self.key_dir = _KEY_DIRS.get(openid, self.key_dir)

    def token(self, service_url=DEFAULT_SERVICE_URL, *options, **kw):
        """A token this digestd accepts (unless options spoil it)."""
        assert self.key_dir, "no signing key known for %s" % self.env.get("BOT_OPENID_URL")
        return mint_token(self.key_dir, service_url, *options,
                          app_id=self.env.get("MICROSOFT_APP_ID"), **kw)

    def auth_header(self, service_url=DEFAULT_SERVICE_URL):
        """b"Authorization: Bearer ...\r\n" for raw requests (b"" with auth off)."""
        if not self.jwt:
            return b""
        return b"Authorization: Bearer %s\r\n" % self.token(service_url).encode()

    def start(self, wait_ready=True):
        self._setup_auth()
        self.logf = open(self.log_path, "wb")
        # TEST_PREFIX (e.g. valgrind) wraps digestd like every test binary.
        prefix = os.environ.get("TEST_PREFIX", "").split()
        self.proc = subprocess.Popen(prefix + [DIGESTD_BIN] + self.args, env=self.env,
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        wait_until(lambda: self.get("/healthz")[0] == 200, 15, "digestd /healthz")
        if wait_ready:
            wait_until(lambda: self.get("/readyz")[0] == 200, 15, "digestd /readyz")
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stops digestd; returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("digestd did not stop within %ss:\n%s" % (timeout, self.log()))
        self.logf.close()
        return self.proc.returncode

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.auth_stub:
            self.auth_stub.stop()
            self.auth_stub = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # --- HTTP over a plain socket: exact bytes, no client-side magic ---
    def raw(self, data, timeout=10):
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            return recv_response(s)

    def request(self, method, path, body=b"", headers=None, timeout=10):
        h = {"Host": "localhost", "Connection": "close"}
        if body or method == "POST":
            h["Content-Length"] = str(len(body))
        h.update(headers or {})
        head = "%s %s HTTP/1.1\r\n" % (method, path)
        head += "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        return self.raw(head.encode() + body, timeout)

    def get(self, path):
        return self.request("GET", path)

    def post_json(self, obj_or_bytes, path="/api/messages", headers=None):
        """POSTs an activity, signed for its serviceUrl when auth is on.

        headers override; a header given as None is left out (e.g.
        {"Authorization": None} sends no token)."""
        body = obj_or_bytes if isinstance(obj_or_bytes, bytes) else json.dumps(obj_or_bytes).encode()
        h = {"Content-Type": "application/json"}
        given = {k.lower() for k in (headers or {})}
        if self.jwt and "authorization" not in given:
            h["Authorization"] = "Bearer " + self.token(service_url_of(obj_or_bytes))
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        return self.request("POST", path, body, h)


def recv_response(s):
    """Reads one HTTP/1.1 response (Content-Length framed) from socket s.

    Returns (status, headers dict lowercased, body bytes)."""
    f = s.makefile("rb")
    return read_response(f)


def read_response(f):
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed before a response")
    status = int(line.split()[1])
    headers = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    body = f.read(n)
    return status, headers, body


def load_fixture(name):
    with open(os.path.join(FIXTURES_DIR, name)) as f:
        return json.load(f)


FIXTURES = ["teams-personal-chat.json", "teams-channel-mention.json", "teams-group-chat.json"]


class DigestdTestCase(unittest.TestCase):
    """Starts one redis-server and one digestd per test class, and with
    stub_args (a tuple, maybe empty) a digest-stub that digestd talks to."""

    digestd_env = {}
    stub_args = None
    auth = "jwt"  # "off" for the tests about BOT_AUTH=off only

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()
        cls.stub = Stub(*cls.stub_args) if cls.stub_args is not None else None
        cls.d = None
        try:
            cls.redis.start()
            env = {}
            if cls.stub:
                cls.stub.start()
                env.update(cls.stub.env())
            env.update(cls.digestd_env)
            cls.d = Digestd(cls.redis.url, env, auth=cls.auth)
            cls.d.start()
        except BaseException:
            # unittest skips tearDownClass when setUpClass fails: clean up here.
            cls.stop_all()
            raise

    @classmethod
    def stop_all(cls):
        if cls.d:
            cls.d.cleanup()
        if cls.stub:
            cls.stub.stop()
        cls.redis.stop()

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.d.stop()
            if rc != 0:
                raise AssertionError("digestd exited %s:\n%s" % (rc, cls.d.log()))
        finally:
            cls.stop_all()

    def setUp(self):
        # Each test starts from an empty stream with its group in place.
        for key in redis_cmd(self.redis.port, "KEYS", "*"):
            if key != "{digest}:requests":
                redis_cmd(self.redis.port, "DEL", key)
        redis_cmd(self.redis.port, "XTRIM", "{digest}:requests", "MAXLEN", "0")

    def keys(self):
        return data_keys(self.redis.port)

    def xlen(self):
        return redis_cmd(self.redis.port, "XLEN", "{digest}:requests")

    def assertNothingWritten(self):
        self.assertEqual(self.keys(), ["{digest}:requests"])
        self.assertEqual(self.xlen(), 0)


# --- digestctl -------------------------------------------------------------

DIGESTCTL_BIN = os.environ.get("DIGESTCTL_BIN", os.path.join(os.path.dirname(DIGESTD_BIN),
                                                              "digestctl"))


def digestctl(redis_url, *args, stdin=b"", env=None, timeout=30):
    """Runs digestctl against redis_url (REDIS_URL, as an operator's shell
    would hold it); returns (exit code, stdout, stderr) as text. A
    TEST_PREFIX tool (valgrind) wraps it like every program under test."""
    e = dict(os.environ)
    for k in ("DIGEST_PREFIX", "WORKER_CLAIM_IDLE_MS"):
        e.pop(k, None)
    e["REDIS_URL"] = redis_url
    e.update(env or {})
    prefix = os.environ.get("TEST_PREFIX", "").split()
    r = subprocess.run(prefix + [DIGESTCTL_BIN] + [str(a) for a in args], env=e, input=stdin,
                       capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def digestctl_json(redis_url, *args, **kw):
    """digestctl … --json that must succeed: its one line of JSON, parsed."""
    rc, out, err = digestctl(redis_url, *args, "--json", **kw)
    assert rc == 0, "digestctl %s: exit %d: %s%s" % (" ".join(map(str, args)), rc, out, err)
    lines = out.splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0])


# --- digest-stub: Microsoft and the upstream, on loopback ---------------

STUB_BIN = os.environ.get("DIGEST_STUB_BIN", os.path.join(os.path.dirname(DIGESTD_BIN),
                                                          "digest-stub"))
APP_ID = "c9e8c047-2a74-40a2-b28a-b162d5f5327c"


class Stub:
    """One `digest-stub serve` process on a free port."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="digest-stub-")
        self.args = ["serve", "--listen", "127.0.0.1:0", "--key-dir", self.dir] + list(args)
        self.proc = None

    def start(self):
        self.out_path = os.path.join(self.dir, "stdout.log")
        self.out = open(self.out_path, "wb")
        self.err = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.proc = subprocess.Popen([STUB_BIN] + self.args, stdout=self.out, stderr=self.err)

        def first_line():
            with open(self.out_path, "rb") as f:
                line = f.readline().decode()
            if self.proc.poll() is not None and not line:
                raise AssertionError("digest-stub exited with %d before listening"
                                     % self.proc.returncode)
            if line.startswith("digest-stub listening on ") and line.endswith("\n"):
                self.url = line.split()[-1]
                return True
            return False

        # RSA key generation under ASan on a loaded machine can take a while;
        # a stub that never says it listens is stopped, not left behind.
        try:
            wait_until(first_line, 30, "digest-stub to listen")
        except BaseException:
            self.stop()
            raise
        self.port = int(self.url.rsplit(":", 1)[1])
        _KEY_DIRS[self.openid_url] = self.dir
        return self

    def stop(self):
        if self.proc is None:
            shutil.rmtree(self.dir, ignore_errors=True)
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.out.close()
            self.err.close()
            if getattr(self, "url", None):
                _KEY_DIRS.pop(self.openid_url, None)
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode if self.proc else None

    def call(self, method, path, obj=None):
        body = json.dumps(obj).encode() if obj is not None else b""
        h = {"Host": "stub", "Connection": "close", "Content-Length": str(len(body))}
        if obj is not None:
            h["Content-Type"] = "application/json"
        head = "%s %s HTTP/1.1\r\n" % (method, path)
        head += "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(head.encode() + body)
            status, _, resp = recv_response(s)
        return status, (json.loads(resp) if resp else None)

    def outbox(self):
        return self.call("GET", "/stub/outbox")[1]

    def stats(self):
        return self.call("GET", "/stub/stats")[1]

    def inject(self, **rule):
        status, _ = self.call("POST", "/stub/inject", rule)
        assert status == 200, status

    def clear(self):
        self.call("DELETE", "/stub/outbox")
        self.call("DELETE", "/stub/inject")

    def wait_outbox(self, n, timeout=10):
        wait_until(lambda: len(self.outbox()) >= n, timeout, "%d connector messages" % n)
        return self.outbox()

    def env(self):
        """digestd settings that send everything outside to this stub."""
        return {
            "SERVICE_URL_ALLOW": "127.0.0.1",
            "BOT_TOKEN_URL": self.url + "/{tenant}/oauth2/v2.0/token",
            "DIGEST_UPSTREAM_URL": self.url + "/api/talentwell/digest?audience={audience}",
            "MICROSOFT_APP_ID": APP_ID,
            "MICROSOFT_APP_PASSWORD": "stub-secret",
            "BOT_OPENID_URL": self.openid_url,
        }

    @property
    def openid_url(self):
        return self.url + "/v1/.well-known/openidconfiguration"

    @property
    def service_url(self):
        return self.url + "/"


def card_of(message):
    """The Adaptive Card inside a recorded connector message."""
    body = json.loads(message["body"]) if isinstance(message["body"], str) else message["body"]
    atts = body["attachments"]
    assert len(atts) == 1 and atts[0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    return body, atts[0]["content"]


def card_text(card):
    """Every string in a card, joined: good enough to look for words."""
    out = []

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, str):
            out.append(x)
    walk(card)
    return "\n".join(out)
