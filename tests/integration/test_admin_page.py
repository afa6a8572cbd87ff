"""The operators' page over HTTP (SPEC §3): GET /admin/ and its files, embedded
in digestd at build time, are served byte for byte as they are in web/, without
a token, with a strict Content-Security-Policy, nosniff and no-cache; the page
holds no inline script or style for that policy to refuse; the JSON routes
still need the token (and are never cached); and with ADMIN_TOKEN unset every
/admin/ path, the page and its files included, is a plain 404. The page in a
real browser is tests/browser."""
import json
import os
import re
import unittest
from html.parser import HTMLParser

from harness import DigestdTestCase

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "web")
TOKEN = "page-test-admin-token-0123456789"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'; require-trusted-types-for 'script'")
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}


def web_files():
    """The files of web/ that make the page (what cmake/embed_web.cmake embeds)."""
    return sorted(f for f in os.listdir(WEB_DIR) if os.path.splitext(f)[1] in TYPES)


def url_of(name):
    return "/admin/" if name == "index.html" else "/admin/" + name


class PageParts(HTMLParser):
    """What the page loads, and anything inline that a strict CSP would refuse."""

    def __init__(self):
        super().__init__()
        self.loads = []
        self.inline = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for name in a:
            if name == "style" or name.startswith("on"):
                self.inline.append("%s %s=" % (tag, name))
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self._in_script = True
            if "src" not in a:
                self.inline.append("<script> without src")
        for name in ("src", "href"):
            if a.get(name) and tag in ("script", "link", "img"):
                self.loads.append(a[name])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append("script text")


class WithToken(DigestdTestCase):
    digestd_env = {"ADMIN_TOKEN": TOKEN}

    def test_every_file_of_web_is_served_as_it_is_without_a_token(self):
        for name in web_files():
            status, h, body = self.d.get(url_of(name))
            self.assertEqual(status, 200, name)
            with open(os.path.join(WEB_DIR, name), "rb") as f:
                self.assertEqual(body, f.read(), name)
            self.assertEqual(h["content-type"], TYPES[os.path.splitext(name)[1]], name)
            self.assertEqual(h["content-security-policy"], CSP, name)
            self.assertEqual(h["x-content-type-options"], "nosniff", name)
            self.assertEqual(h["cache-control"], "no-cache", name)
            self.assertEqual(h["referrer-policy"], "no-referrer", name)
            self.assertNotIn("set-cookie", h, name)

    def test_the_page_has_nothing_inline_and_loads_only_its_own_files(self):
        _, _, body = self.d.get("/admin/")
        parts = PageParts()
        parts.feed(body.decode())
        self.assertEqual(parts.inline, [])
        # Each file the page names, and each module the scripts import, is one of ours.
        wanted = set(parts.loads)
        for name in web_files():
            if name.endswith(".js"):
                with open(os.path.join(WEB_DIR, name)) as f:
                    wanted |= set(re.findall(r"""from '\./([\w.-]+)'""", f.read()))
        self.assertIn("app.js", wanted)
        for ref in sorted(wanted):
            self.assertNotRegex(ref, r"^(https?:)?//", "nothing from elsewhere")
            self.assertEqual(self.d.get("/admin/" + ref)[0], 200, ref)
        # The scripts never turn a string into markup (Trusted Types would refuse it).
        for name in web_files():
            with open(os.path.join(WEB_DIR, name)) as f:
                text = f.read()
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                self.assertNotIn(sink, text, name)

    def test_the_json_routes_still_need_the_token_and_are_never_cached(self):
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"},
                        {"Authorization": "Basic " + TOKEN}):
            status, h, body = self.d.request("GET", "/admin/queue", headers=headers)
            self.assertEqual(status, 401, headers)
            self.assertEqual(json.loads(body)["error"]["code"], "unauthorized")
        status, h, body = self.d.request("GET", "/admin/queue",
                                         headers={"Authorization": "Bearer " + TOKEN})
        self.assertEqual(status, 200)
        self.assertEqual(h["cache-control"], "no-store")
        self.assertIn("verdict", json.loads(body))

    def test_other_paths_and_methods(self):
        status, h, body = self.d.get("/admin")
        self.assertEqual((status, h["location"], body), (308, "/admin/", b""))
        for path in ("/admin/index.html", "/admin/nope.js", "/admin/package.json",
                     "/admin/app.js/x"):
            status, _, body = self.d.get(path)
            self.assertEqual(status, 404, path)
            self.assertEqual(json.loads(body)["error"]["code"], "not_found")
        self.assertEqual(self.d.request("POST", "/admin/")[0], 405)
        # A query string is the page all the same (the path decides).
        self.assertEqual(self.d.get("/admin/?x=1")[0], 200)


class WithoutToken(DigestdTestCase):
    def test_every_admin_path_is_a_plain_404(self):
        paths = ["/admin", "/admin/queue", "/admin/procs", "/admin/requests/x", "/admin/nope.js"]
        paths += [url_of(name) for name in web_files()]
        for path in paths:
            status, h, body = self.d.get(path)
            self.assertEqual(status, 404, path)
            self.assertEqual(json.loads(body)["error"]["code"], "not_found", path)
            self.assertNotIn("content-security-policy", h, "nothing of the page: %s" % path)
        for path in ("/admin/dead/requeue-all", "/admin/dead/x/requeue"):
            self.assertEqual(self.d.request("POST", path, b"{}")[0], 404, path)


if __name__ == "__main__":
    unittest.main()
