"""The Dockerfile, proved without a Docker engine.

- Its build stage installs exactly scripts/deps.sh's build list.
- Its runtime stage's packages cover every shared library the shipped binaries link (ldd, each
  library mapped to its Debian package with dpkg -S): a package is covered when the stage lists
  it, when a listed package depends on it (the installed Depends, followed to the end), or when
  debian:12-slim has it already (Essential or Priority required).
- With IMAGE_BUILD=1 (ctest's deploy.image.build): the build stage's own RUN cmake commands,
  read from the Dockerfile, run in a fresh directory that holds only what the stage COPYs, with
  an environment of nothing but PATH (no CC, CFLAGS or PKG_CONFIG_PATH of the caller), and the
  binaries they make are the ones checked against the runtime stage. A clean Debian 12 root
  (docker, debootstrap or mmdebstrap) needs an engine or a mirror this machine has not; the
  packages here are Debian 12's, so what differs from the image's build stage is only what else
  is installed, and the runtime check below is what would catch a library that leaked in.

Environment: DIGESTD_BIN, DIGESTCTL_BIN, DIGEST_STUB_BIN (ctest's build), IMAGE_BUILD, and
SANITIZED_BUILD=1 when ctest's build is the ASan one (CI's): its binaries also link GCC's
sanitizer runtimes (libasan, libubsan), which are the test build's, not the image's, so the
ImagePackages check leaves exactly those out; ImageBuild's own Release binaries are checked whole.
"""

import functools
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.path.dirname(os.environ.get("DIGESTD_BIN", os.path.join(ROOT, "build", "digestd")))


def dockerfile_stages(text):
    """Stages of a Dockerfile: [{'from', 'name', 'instructions': [(op, args)]}], continuation
    lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(l for l in text.split("\n") if not l.lstrip().startswith("#")))
    stages = []
    for line in joined.split("\n"):
        line = line.strip()
        if not line:
            continue
        op, _, args = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append({"from": parts[0], "name": name, "instructions": []})
        else:
            stages[-1]["instructions"].append((op, args.strip()))
    return stages


def apt_packages(stage):
    """The packages of every `apt-get install` in a stage's RUN lines."""
    pkgs = []
    for op, args in stage["instructions"]:
        if op != "RUN":
            continue
        for cmd in re.split(r"&&|;", args):
            words = shlex.split(cmd)
            if len(words) >= 2 and words[0] == "apt-get" and "install" in words:
                pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def deps_list(which):
    out = subprocess.run([os.path.join(ROOT, "scripts", "deps.sh"), "--list", which],
                         check=True, capture_output=True, text=True).stdout
    return out.split()


SANITIZER_RUNTIME = re.compile(r"^lib(asan|ubsan)\.so")


def needed(path):
    """The DT_NEEDED sonames of an ELF file (readelf -d)."""
    out = subprocess.run(["readelf", "-d", path], check=True, capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def linked_libraries(binary, sanitized=False):
    """Resolved paths of every shared library ldd says binary loads; fails on 'not found'.
    sanitized: binary comes from the ASan build, so the sanitizer runtimes, and what only they
    load (libstdc++ for libasan), are left out: the libraries reached from the binary's own
    DT_NEEDED without passing through a sanitizer runtime."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    paths = {}
    for line in out.splitlines():
        if "not found" in line:
            raise AssertionError(f"{binary}: {line.strip()}")
        m = re.search(r"^\s*(\S+)\s+=>\s+(/\S+)", line)
        if m:
            paths[m.group(1)] = m.group(2)
    if not sanitized:
        return list(paths.values())
    seen, todo = set(), [n for n in needed(binary)]
    while todo:
        name = todo.pop()
        if name in seen or SANITIZER_RUNTIME.match(name) or name not in paths:
            continue
        seen.add(name)
        todo.extend(needed(paths[name]))
    return [paths[n] for n in sorted(seen)]


@functools.lru_cache(maxsize=None)
def owning_package(path):
    """The Debian package that ships a file (merged /usr: try the path, its real path, and the
    /usr-less or /usr form)."""
    candidates = [path, os.path.realpath(path)]
    for p in list(candidates):
        candidates.append(p[4:] if p.startswith("/usr/") else "/usr" + p)
    for p in candidates:
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].split(",")[0].strip()
    raise AssertionError(f"no Debian package ships {path}")


@functools.lru_cache(maxsize=None)
def installed_field(pkg, field):
    r = subprocess.run(["dpkg-query", "-W", "-f", "${" + field + "}", pkg],
                       capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""


def depends_closure(pkgs):
    """Every package the given ones need, as the installed Depends/Pre-Depends say (the first
    alternative that is installed), the given ones included."""
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        deps = installed_field(p, "Depends") + "," + installed_field(p, "Pre-Depends")
        for clause in deps.split(","):
            alts = [re.sub(r"[\s(:].*", "", a.strip()) for a in clause.split("|") if a.strip()]
            for a in alts:
                if installed_field(a, "Status").endswith("installed"):
                    todo.append(a)
                    break
    return seen


def in_slim_base(pkg):
    return (installed_field(pkg, "Essential") == "yes"
            or installed_field(pkg, "Priority") == "required")


SANITIZED = os.environ.get("SANITIZED_BUILD") == "1"
STAGES = dockerfile_stages(open(os.path.join(ROOT, "Dockerfile")).read())
BUILD = next(s for s in STAGES if s["name"] == "build")
RUNTIME = STAGES[-1]


def shipped_binaries():
    """(path in the build stage, destination) of each COPY --from=build of the runtime stage."""
    out = []
    for op, args in RUNTIME["instructions"]:
        if op == "COPY" and args.startswith("--from=build"):
            src, dst = args.split()[1:3]
            out.append((src, dst))
    return out


class RuntimeCheck:
    def check_runtime_covers(self, binaries, sanitized=False):
        listed = apt_packages(RUNTIME)
        for p in listed:
            self.assertTrue(installed_field(p, "Status").endswith("installed"),
                            f"runtime package {p} is not installed here, so it cannot be checked")
        covered = depends_closure(listed)
        for b in binaries:
            libs = linked_libraries(b, sanitized)
            self.assertTrue(libs, f"{b} links nothing?")
            for lib in libs:
                pkg = owning_package(lib)
                self.assertTrue(pkg in covered or in_slim_base(pkg),
                                f"{os.path.basename(b)} links {lib} from {pkg}, which the runtime "
                                f"stage does not install ({' '.join(listed)})")


class ImagePackages(RuntimeCheck, unittest.TestCase):
    def test_build_stage_installs_deps_sh_build_list(self):
        self.assertEqual(BUILD["from"], "debian:12")
        self.assertEqual(sorted(apt_packages(BUILD)), sorted(deps_list("build")))
        self.assertEqual(len(apt_packages(BUILD)), len(set(apt_packages(BUILD))))

    def test_runtime_stage_is_debian_12_slim_and_ships_the_programs(self):
        self.assertEqual(RUNTIME["from"], "debian:12-slim")
        names = [os.path.basename(s) for s, _ in shipped_binaries()]
        self.assertIn("digestd", names)
        self.assertIn("digestctl", names)

    def test_runtime_packages_cover_what_the_built_binaries_link(self):
        bins = [os.path.join(BUILD_DIR, os.path.basename(s)) for s, _ in shipped_binaries()]
        self.check_runtime_covers(bins, SANITIZED)

    def test_the_check_fails_without_a_library_package(self):
        # Not a formality: a runtime stage without libuv1 is refused.
        listed = [p for p in apt_packages(RUNTIME) if p != "libuv1"]
        covered = depends_closure(listed)
        pkgs = {owning_package(l)
                for l in linked_libraries(os.path.join(BUILD_DIR, "digestd"), SANITIZED)}
        self.assertIn("libuv1", pkgs)
        self.assertNotIn("libuv1", covered)
        self.assertFalse(in_slim_base("libuv1"))

    @unittest.skipUnless(SANITIZED, "only the ASan build links sanitizer runtimes")
    def test_only_the_sanitizer_runtimes_are_left_out(self):
        b = os.path.join(BUILD_DIR, "digestd")
        everything = linked_libraries(b)
        dropped = set(everything) - set(linked_libraries(b, True))
        runtimes = [l for l in everything if SANITIZER_RUNTIME.match(os.path.basename(l))]
        self.assertTrue(runtimes, "an ASan build that links no libasan?")
        self.assertTrue(set(runtimes) <= dropped)
        # Whatever else is dropped is loaded by a runtime (libstdc++, libgcc_s for libasan).
        by_runtimes = {os.path.basename(n) for r in runtimes for n in needed(r)}
        for lib in dropped - set(runtimes):
            self.assertIn(os.path.basename(lib), by_runtimes)


@unittest.skipUnless(os.environ.get("IMAGE_BUILD") == "1", "IMAGE_BUILD=1 runs the build stage")
class ImageBuild(RuntimeCheck, unittest.TestCase):
    def test_build_stage_commands_in_a_clean_directory(self):
        tmp = tempfile.mkdtemp(prefix="image-build-")
        try:
            workdir = None
            src_root = os.path.join(tmp, "src")
            commands = []
            for op, args in BUILD["instructions"]:
                if op == "WORKDIR":
                    workdir = args
                elif op == "COPY":
                    # Only what the stage copies is in the build context.
                    *srcs, dst = args.split()
                    dest = os.path.join(src_root, os.path.relpath(os.path.join(workdir, dst), workdir))
                    for s in srcs:
                        s_abs = os.path.join(ROOT, s)
                        if os.path.isdir(s_abs):
                            shutil.copytree(s_abs, os.path.join(src_root, dst.rstrip("/")),
                                            ignore=shutil.ignore_patterns("node_modules", "__pycache__"))
                        else:
                            os.makedirs(dest, exist_ok=True)
                            shutil.copy2(s_abs, dest)
                elif op == "RUN" and "cmake" in args:
                    commands.append(args)
            self.assertEqual(workdir, "/src")
            self.assertTrue(any("-DCMAKE_BUILD_TYPE=Release" in c for c in commands))
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tmp}
            for c in commands:
                # The machine is shared: two jobs instead of every core.
                c = c.replace('-j"$(nproc)"', "-j2")
                subprocess.run(["sh", "-ec", c], cwd=src_root, env=env, check=True)
            bins = [os.path.join(src_root, os.path.relpath(s, "/src")) for s, _ in shipped_binaries()]
            for b in bins:
                self.assertTrue(os.access(b, os.X_OK), b)
                out = subprocess.run([b, "--version"], capture_output=True, text=True, env=env)
                self.assertEqual(out.returncode, 0, out.stderr)
            self.check_runtime_covers(bins)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
