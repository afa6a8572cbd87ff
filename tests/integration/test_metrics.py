"""GET /metrics of a live digestd passes `promtool check metrics` (SPEC §3:
every family has # HELP and # TYPE, and promtool finds nothing to complain
about). The scrape is taken after real traffic, a digest delivered end to
end and a help card, so that every family has samples to be checked."""
import shutil
import subprocess
import unittest

from harness import Digestd, RedisServer, Stub, load_fixture, wait_until

PROMTOOL = shutil.which("promtool")


def activity(stub, id, text):
    a = load_fixture("teams-personal-chat.json")
    a["serviceUrl"] = stub.service_url
    a["id"] = id
    a["text"] = text
    a.pop("entities", None)
    return a


def families(text):
    """{family: its # TYPE} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            out[name] = kind
    return out


def has_sample(text, name, kind):
    names = [name + s for s in ("_bucket", "_sum", "_count")] if kind == "histogram" else [name]
    return any(line.split("{")[0].split(" ")[0] in names
               for line in text.splitlines() if not line.startswith("#"))


class Promtool(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.stub = Stub().start()
        # --role all: the webhook and the worker, so job and connector families fill too.
        cls.d = Digestd(cls.redis.url, cls.stub.env(), args=[])
        try:
            cls.d.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.d.proc:
                rc = cls.d.stop()
                assert rc == 0, "digestd exited %s:\n%s" % (rc, cls.d.log())
        finally:
            cls.d.cleanup()
            cls.stub.stop()
            cls.redis.stop()

    def scrape_after_traffic(self):
        status, _, body = self.d.post_json(activity(self.stub, "metrics-1", "digest advisors"))
        self.assertEqual(status, 202, body)
        status, _, body = self.d.post_json(activity(self.stub, "metrics-2", "help"))
        self.assertEqual(status, 200, body)
        # The ack, the help card, the result and the ack's update.
        self.stub.wait_outbox(4, 30)
        wait_until(lambda: 'digestd_jobs_total{outcome="delivered"}' in
                   self.d.get("/metrics")[2].decode(), 10, "the delivered job in /metrics")
        status, headers, body = self.d.get("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain"), headers)
        return body.decode()

    def test_promtool_finds_nothing(self):
        self.assertIsNotNone(PROMTOOL, "promtool not found: apt-get install prometheus "
                                       "(scripts/deps.sh installs it)")
        text = self.scrape_after_traffic()
        fams = families(text)
        self.assertGreater(len(fams), 20, text)
        empty = [n for n, kind in fams.items() if not has_sample(text, n, kind)]
        self.assertEqual(empty, [], "families without samples: the check would not see them")
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=60)
        out = (r.stdout + r.stderr).decode()
        self.assertEqual((r.returncode, out), (0, ""), text)


if __name__ == "__main__":
    unittest.main()
