#!/usr/bin/env python3
"""Soak test of distd: many distctl clients, chosen by a seeded random driver, against one daemon.

    soak.py --bin DIR [--seconds 60] [--seed N] [--clients 8] [--jobs 3] [--builds 4]

See tests/soak/README.md for what it does and what each check means. Python 3.11 standard
library only. Exit code 0 if every check passed, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

GRACE = "2s"  # distd --grace
GRACE_S = 2.0
MONITOR_INTERVAL = 0.01
# Settle allowances: the kernel ends a SIGKILLed process a moment after the signal, gRPC closes
# connections and retires threads asynchronously.
SURVIVOR_ALLOWANCE = 3.0
SETTLE_ALLOWANCE = 10.0
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "ThreadSanitizer", "runtime error:")
ASAN_EXTRA = ("max_free_fill_size=4096", "free_fill_byte=0", "handle_abort=1")
NCPU = os.cpu_count() or 1
# Thread names (15 characters of comm) of gRPC pools that grow on demand and never shrink.
GRPC_ONDEMAND_CAPS = {"default-executo": 2 * NCPU, "resolver-execut": 2 * NCPU,
                      "grpc_global_tim": 2 * NCPU}
REFUSED_RE = re.compile(r"build \S+ (failed: |is being stopped: )")
QUEUED_RE = re.compile(r"job \d+: ")


class Interrupted(Exception):
    pass


class RWLock:
    """Writer-preferring reader/writer lock with timeouts. Readers: clients that submit, wait
    or abort in the current generation of a build; writer: the check-then-close of a build."""

    def __init__(self):
        self._cv = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    def acquire_shared(self, timeout):
        with self._cv:
            ok = self._cv.wait_for(lambda: not self._writer and self._writers_waiting == 0,
                                   timeout)
            if ok:
                self._readers += 1
            return ok

    def release_shared(self):
        with self._cv:
            self._readers -= 1
            if self._readers == 0:
                self._cv.notify_all()

    def acquire_exclusive(self, timeout):
        with self._cv:
            self._writers_waiting += 1
            try:
                ok = self._cv.wait_for(lambda: not self._writer and self._readers == 0, timeout)
            finally:
                self._writers_waiting -= 1
            if ok:
                self._writer = True
            else:
                self._cv.notify_all()  # readers held back by this writer may go on
            return ok

    def release_exclusive(self):
        with self._cv:
            self._writer = False
            self._cv.notify_all()


class Build:
    """One build name. A generation lasts from the first submit after a close to the next
    close; the driver's tally of what it submitted is per generation."""

    def __init__(self, index, name):
        self.index = index
        self.name = name
        self.lock = RWLock()
        self.gen = 1
        self.exact = 0  # jobs certainly queued in this generation
        self.amb = 0  # interrupted foreground runs that may or may not have been queued
        self.mu = threading.Lock()  # for exact/amb (many readers update them at once)

    def add(self, exact=0, amb=0):
        with self.mu:
            self.exact += exact
            self.amb += amb

    def prefix(self, marker, gen=None):
        return f"{marker}-b{self.index}g{self.gen if gen is None else gen}-"


class Result:
    def __init__(self, args, code, out, err, secs, timed_out=False):
        self.args = args
        self.code = code
        self.out = out
        self.err = err
        self.secs = secs
        self.timed_out = timed_out

    def err_text(self, limit=400):
        """The end of stderr, where distctl's own messages are (a job's output comes first)."""
        text = self.err.decode(errors="replace").strip()
        return text if len(text) <= limit else "..." + text[-limit:]

    def describe(self):
        return (f"'distctl {' '.join(shlex.quote(a) for a in self.short_args())}' exited "
                f"{self.code} after {self.secs:.2f}s; stderr: {self.err_text()!r}")

    def short_args(self):
        out = []
        for a in self.args:
            out.append(a if len(a) <= 60 else a[:57] + "...")
        return out


class Soak:
    def __init__(self, opts):
        self.t0 = time.monotonic()
        self.opts = opts
        self.seed = opts.seed
        # Unique per run, from outside the seed: two runs with one seed must not see each
        # other's processes.
        salt = int.from_bytes(os.urandom(4), "little")
        self.marker = f"distd-soak-{os.getpid()}x{salt % 100000:05d}"
        self.orphan = f"97{salt % 9973:04d}.{os.getpid()}"  # sleep ORPHAN &: outlives its leader
        self.tmp = tempfile.mkdtemp(prefix="distd-soak-")
        # Copies: a rebuild of --bin during the run (ninja replaces the files) must not make
        # a client fail to start, nor mix two versions.
        os.mkdir(os.path.join(self.tmp, "bin"))
        for exe in ("distd", "distctl"):
            shutil.copy2(os.path.join(opts.bin, exe), os.path.join(self.tmp, "bin", exe))
        self.distd = os.path.join(self.tmp, "bin", "distd")
        self.distctl = os.path.join(self.tmp, "bin", "distctl")
        self.distctl_real = os.path.realpath(self.distctl)
        self.sock = os.path.join(self.tmp, "d.sock")
        self.log = os.path.join(self.tmp, "jobs.log")
        self.daemon_log = os.path.join(self.tmp, "distd.log")
        self.action_log_path = os.path.join(self.tmp, "actions.log")
        self.action_log = open(self.action_log_path, "a", buffering=1)
        self.action_mu = threading.Lock()
        self.env = dict(os.environ)
        self.env["DISTD_ADDR"] = "unix:" + self.sock
        for k in ("DISTD_BUILD", "DISTD_SOCKET"):
            self.env.pop(k, None)
        self.env["XDG_STATE_HOME"] = os.path.join(self.tmp, "state")  # its own journal
        # For sanitizer builds (ignored otherwise): zero what is freed, so that a use after
        # free through a library ASan does not instrument (the system's absl, whose Mutex
        # lives in distd's objects) reads zeros and fails loudly instead of reading the stale
        # contents ASan's quarantine keeps; and print a stack when something aborts.
        asan = self.env.get("ASAN_OPTIONS", "")
        extra = [o for o in ASAN_EXTRA if o.split("=")[0] + "=" not in asan]
        if extra:
            self.env["ASAN_OPTIONS"] = ":".join(([asan] if asan else []) + extra)
        self.builds = [Build(i, f"soak{i}") for i in range(opts.builds)]
        self.seq = itertools.count(1)
        self.failures = []
        self.fail_mu = threading.Lock()
        self.stats = collections.Counter()
        self.stats_mu = threading.Lock()
        self.procs = set()  # Popen objects of distctl still to be reaped
        self.procs_mu = threading.Lock()
        self.daemon = None
        self.dpid = None
        self.stop = threading.Event()
        self.stop_monitor = threading.Event()
        self.max_live = 0
        self.pool_violations = 0
        self.first_seen = {}  # token -> time the monitor first saw its leader
        self.seen_mu = threading.Lock()
        self.monitor_scans = 0
        self.refused_tokens = set()  # tokens of jobs distd refused: none may ever start
        self.refused_mu = threading.Lock()
        self.log_offset = 0
        self.log_started = set()
        self.log_mu = threading.Lock()
        self.verified_gens = 0
        self.unverified_gens = 0
        self.run_end = self.t0 + opts.seconds
        self.client_deadline = self.run_end + 10  # client subprocesses must end by then
        self.final_deadline = self.run_end + 18  # the last calls of the final checks

    # --- bookkeeping -------------------------------------------------------------------------

    def now(self):
        return time.monotonic() - self.t0

    def fail(self, msg):
        with self.fail_mu:
            self.failures.append(f"[t={self.now():.1f}s] {msg}")
        self.note("FAIL " + msg)

    def count(self, key, n=1):
        with self.stats_mu:
            self.stats[key] += n

    def note(self, msg):
        with self.action_mu:
            self.action_log.write(f"{self.now():8.3f} {threading.current_thread().name}: {msg}\n")

    def token(self, build):
        return f"{build.prefix(self.marker)}{next(self.seq)}"

    # --- processes ---------------------------------------------------------------------------

    def spawn(self, args, build=None, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE):
        cmd = [self.distctl] + (["--build", build.name] if build is not None else []) + args
        p = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                             cwd=self.tmp, env=self.env, start_new_session=True)
        p.soak_args = cmd[1:]
        p.soak_t = time.monotonic()
        with self.procs_mu:
            self.procs.add(p)
        return p

    def timeout_left(self, deadline=None, cap=None):
        left = (deadline or self.client_deadline) - time.monotonic()
        if cap is not None:
            left = min(left, cap)
        return max(2.0, left)

    def finish(self, p, input=None, deadline=None, cap=None):
        t = self.timeout_left(deadline, cap)
        timed_out = False
        try:
            out, err = p.communicate(input, timeout=t)
        except subprocess.TimeoutExpired:
            timed_out = True
            p.kill()
            out, err = p.communicate()
        with self.procs_mu:
            self.procs.discard(p)
        r = Result(p.soak_args, p.returncode, out or b"", err or b"", time.monotonic() - p.soak_t,
                   timed_out)
        if timed_out:
            self.fail(f"no answer within {t:.1f}s, killed: {r.describe()}")
        text = r.err.decode(errors="replace")
        if any(m in text for m in SANITIZER_MARKS):
            self.fail(f"a sanitizer reported in distctl: {r.describe()}\n{text[:3000]}")
        self.note(f"{' '.join(r.short_args())} -> {r.code} ({r.secs:.2f}s)"
                  + (f" stderr: {r.err_text(160)!r}" if r.code != 0 and r.err else ""))
        return r

    def call(self, args, build=None, input=None, deadline=None, cap=None):
        p = self.spawn(args, build, stdin=subprocess.PIPE if input is not None else
                       subprocess.DEVNULL)
        return self.finish(p, input=input, deadline=deadline, cap=cap)

    def signals_blocked(self, pid, timeout=3.0):
        """Waits until PID is distctl and has blocked SIGINT and SIGTERM (its signal thread
        owns them from then on); before that a signal would simply kill it."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if os.readlink(f"/proc/{pid}/exe") == self.distctl_real:
                    with open(f"/proc/{pid}/status") as f:
                        for line in f:
                            if line.startswith("SigBlk:"):
                                if int(line.split()[1], 16) & 0x4002 == 0x4002:
                                    return True
            except (OSError, ValueError):
                pass
            time.sleep(0.005)
        return False

    # --- the job processes -------------------------------------------------------------------

    @staticmethod
    def read_proc(pid):
        """(state, ppid, pgrp, argv) of PID, or None."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            state, ppid, pgrp = fields[0].decode(), int(fields[1]), int(fields[2])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            return state, ppid, pgrp, [a.decode(errors="replace") for a in argv]
        except (OSError, ValueError, IndexError):
            return None

    def scan_leaders(self):
        """Live (non-zombie) job leaders: children of distd, leading their own process group,
        `sh -c SCRIPT TOKEN` with our marker. Returns [(pid, token)]."""
        found = []
        prefix = self.marker + "-"
        for e in os.scandir("/proc"):
            if not e.name.isdigit():
                continue
            pid = int(e.name)
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    stat = f.read()
                close = stat.rindex(b")")
                fields = stat[close + 2:].split()
                if int(fields[1]) != self.dpid or int(fields[2]) != pid or fields[0] == b"Z":
                    continue
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if len(argv) >= 4 and argv[0] == b"sh" and argv[3].decode(errors="replace") \
                    .startswith(prefix):
                found.append((pid, argv[3].decode(errors="replace")))
        return found

    def scan_ours(self):
        """Every process that is ours by its command line: a job's shell (any member of a job's
        process group while it still carries the leader's argv) or an orphan sleep."""
        found = []
        orphan = ["sleep", self.orphan]
        for e in os.scandir("/proc"):
            if not e.name.isdigit():
                continue
            info = self.read_proc(int(e.name))
            if info is None:
                continue
            state, ppid, pgrp, argv = info
            argv = [a for a in argv if a != ""] if argv and argv[-1] == "" else argv
            joined = " ".join(argv)
            if self.marker in joined or argv[:2] == orphan:
                found.append(f"pid {e.name} state {state} ppid {ppid} pgrp {pgrp}: "
                             f"{joined[:200]}")
        return found

    def monitor(self):
        while not self.stop_monitor.is_set():
            try:
                leaders = self.scan_leaders()
            except Exception as e:  # noqa: BLE001 - the monitor must not die silently
                self.fail(f"monitor: {e!r}")
                return
            now = time.monotonic()
            self.monitor_scans += 1
            if len(leaders) > self.opts.jobs:
                self.pool_violations += 1
                if len(leaders) > self.max_live:  # once per new maximum, then counted
                    self.fail(f"pool bound exceeded: {len(leaders)} job leaders alive at once "
                              f"with --jobs {self.opts.jobs}: {leaders}")
            self.max_live = max(self.max_live, len(leaders))
            with self.seen_mu:
                for _, tok in leaders:
                    self.first_seen.setdefault(tok, now)
            self.stop_monitor.wait(MONITOR_INTERVAL)

    def started(self, token):
        """Whether the job TOKEN has visibly started: its start line is in the job log, or the
        monitor saw its leader."""
        with self.seen_mu:
            if token in self.first_seen:
                return True
        with self.log_mu:
            try:
                with open(self.log, "rb") as f:
                    f.seek(self.log_offset)
                    data = f.read()
            except FileNotFoundError:
                data = b""
            cut = data.rfind(b"\n") + 1
            self.log_offset += cut
            for line in data[:cut].split(b"\n"):
                parts = line.split()
                if len(parts) >= 2 and parts[0] == b"start":
                    self.log_started.add(parts[1].decode(errors="replace"))
            return token in self.log_started

    def script(self, rng, code, big_out=0, big_err=0, orphan=False, sleep_ms=None):
        """The job: `sh -c SCRIPT TOKEN`, $0 being the token. No single quotes in it, so
        that a batch line can quote it."""
        if sleep_ms is None:
            sleep_ms = rng.randint(0, 20) if rng.random() < 0.5 else rng.randint(0, 200)
        s = f'echo "start $0 $$" >>{self.log}; '
        if big_out:
            s += f"yes y | head -c {big_out}; "
        if big_err:
            s += f"yes e | head -c {big_err} >&2; "
        if orphan:
            s += f"sleep {self.orphan} & "
        s += f'sleep {sleep_ms / 1000:.3f}; echo "end $0" >>{self.log}; exit {code}'
        return s

    def random_job(self, rng, fail_p):
        code = 1 if rng.random() < fail_p else 0
        big_out = rng.randint(100_000, 400_000) if rng.random() < 0.04 else 0
        big_err = rng.randint(100_000, 300_000) if rng.random() < 0.02 else 0
        orphan = rng.random() < 0.1
        return code, self.script(rng, code, big_out, big_err, orphan)

    # --- checks shared by the actions --------------------------------------------------------

    def check_nothing_runs(self, build, gen, what):
        """After an abort returned 0 or a wait reported the failure: no leader of that
        generation may still be alive (distd reaps a leader before it ends its job)."""
        prefix = build.prefix(self.marker, gen)
        alive = [(pid, tok) for pid, tok in self.scan_leaders() if tok.startswith(prefix)]
        if alive:
            self.fail(f"{what} on build {build.name} (generation {gen}) returned while jobs of "
                      f"it still ran: {alive}")

    def check_status_json(self, r, build=None):
        """Parses a `status --json`, checks its invariants; returns the dict (or None)."""
        try:
            st = json.loads(r.out)
        except ValueError as e:
            self.fail(f"status --json is not JSON ({e}): {r.out[:300]!r}")
            return None
        n = lambda d, k: int(d.get(k, 0) or 0)  # noqa: E731 - uint64 are strings in JSON
        if n(st, "jobs") != self.opts.jobs:
            self.fail(f"status says jobs={st.get('jobs')}, distd was started with "
                      f"--jobs {self.opts.jobs}")
        builds = st.get("builds", [])
        if build is None and n(st, "running") > self.opts.jobs:
            self.fail(f"status: {n(st, 'running')} jobs running with --jobs {self.opts.jobs}")
        if build is None and (
                sum(n(b, "running") for b in builds) != n(st, "running")
                or sum(n(b, "queued") for b in builds) != n(st, "queued")
                or len(st.get("running_jobs", [])) != n(st, "running")):
            # distd reads the pool, the builds and the running jobs under three separate
            # locks (Service::Status): they need not agree while jobs move. Counted, and
            # required at the end, when nothing moves.
            self.count("status: pool, builds and running jobs read at different moments")
            self.note(f"status snapshot differs: {json.dumps(st)[:600]}")
        names = {b.name for b in self.builds}
        for b in builds:
            if b.get("name") not in names:
                self.fail(f"status shows a build the soak never named: {b.get('name')}")
            total = sum(n(b, k) for k in ("queued", "running", "succeeded", "failed",
                                            "cancelled"))
            if total != n(b, "submitted"):
                self.fail(f"status: build {b.get('name')}: queued+running+succeeded+failed+"
                          f"cancelled = {total} != submitted {n(b, 'submitted')}: "
                          f"{json.dumps(b)[:600]}")
            if b.get("state") not in ("BUILD_RUNNING", "BUILD_DYING", "BUILD_DEAD"):
                self.fail(f"status: build {b.get('name')} in state {b.get('state')}")
            if b.get("state") == "BUILD_DEAD" and (n(b, "running") or n(b, "queued")):
                self.fail(f"status: dead build {b.get('name')} still has jobs: "
                          f"{json.dumps(b)[:600]}")
        for j in st.get("running_jobs", []):
            argv = j.get("argv", [])
            tok = argv[3] if len(argv) >= 4 else ""
            m = re.match(re.escape(self.marker) + r"-b(\d+)g", tok)
            if m and j.get("build") != self.builds[int(m.group(1))].name:
                self.fail(f"status: job {tok} shown in build {j.get('build')}")
        return st

    def build_status(self, build, deadline=None):
        """`status --build B --json`: (entry or None if unknown, Result)."""
        r = self.call(["status", "--json"], build, deadline=deadline)
        if r.code == 125 and "no build named" in r.err_text():
            return None, r
        if r.code not in (0, 1):
            self.fail(f"status of one build: {r.describe()}")
            return None, r
        st = self.check_status_json(r, build)
        if st is None:
            return None, r
        entries = [b for b in st.get("builds", []) if b.get("name") == build.name]
        if len(entries) != 1:
            self.fail(f"status --build {build.name} lists {len(entries)} entries of it")
            return None, r
        e = entries[0]
        want = 0 if e.get("state") == "BUILD_RUNNING" else 1
        if r.code != want:
            self.fail(f"status --build {build.name}: state {e.get('state')} but exit {r.code}")
        return e, r

    def verify_generation(self, build, entry, where):
        """The build is idle: every submitted job has exactly one outcome, and distd's
        submitted count is the driver's tally."""
        n = lambda k: int(entry.get(k, 0) or 0)  # noqa: E731
        if n("queued") or n("running"):
            return False
        done = n("succeeded") + n("failed") + n("cancelled")
        if done != n("submitted"):
            self.fail(f"{where}: build {build.name} idle but succeeded+failed+cancelled = {done}"
                      f" != submitted {n('submitted')}")
        with build.mu:
            exact, amb = build.exact, build.amb
        if not exact <= n("submitted") <= exact + amb:
            self.fail(f"{where}: build {build.name} generation {build.gen}: distd counts "
                      f"{n('submitted')} submitted jobs, the driver submitted {exact}"
                      + (f" (+ up to {amb} interrupted foreground runs)" if amb else ""))
        self.count("jobs accounted", n("submitted"))
        self.count("jobs accounted: succeeded", n("succeeded"))
        self.count("jobs accounted: failed", n("failed"))
        self.count("jobs accounted: cancelled", n("cancelled"))
        self.count("interrupted runs queued (resolved by count)", n("submitted") - exact)
        self.count("interrupted runs, ambiguous", amb)
        return True

    # --- the actions -------------------------------------------------------------------------

    def act_bg(self, rng, b):
        if not b.lock.acquire_shared(1.0):
            return self.count("lock busy")
        try:
            nocheck = rng.random() < 0.15
            _, script = self.random_job(rng, 0.3 if nocheck else 0.04)
            tok = self.token(b)
            args = ["run", "--bg"] + (["--no-check"] if nocheck else []) + \
                ["--", "sh", "-c", script, tok]
            r = self.call(args, b)
            if r.code == 0:
                ids = r.out.split()
                if len(ids) != 1 or not ids[0].isdigit():
                    self.fail(f"run --bg printed {r.out[:200]!r}, not one job id")
                b.add(exact=1)
                self.count("run --bg: queued")
            elif r.code == 125 and REFUSED_RE.search(r.err_text()):
                with self.refused_mu:
                    self.refused_tokens.add(tok)
                self.count("run --bg: refused (build failed)")
                return "refused"
            else:
                self.fail(f"run --bg: {r.describe()}")
        finally:
            b.lock.release_shared()

    def act_batch(self, rng, b):
        if not b.lock.acquire_shared(1.0):
            return self.count("lock busy")
        try:
            nocheck = rng.random() < 0.15
            count = rng.randint(10, 200)
            failing = rng.randrange(count) if rng.random() < 0.3 else -1
            lines, toks = [], []
            for i in range(count):
                _, script = self.random_job(rng, 0.0)
                if i == failing:
                    script = self.script(rng, 1)
                tok = self.token(b)
                toks.append(tok)
                lines.append(f"sh -c '{script}' {tok}")
                if rng.random() < 0.05:
                    lines.append("# a comment")
            text = ("\n".join(lines) + "\n").encode()
            opts = ["run", "--bg"] + (["--no-check"] if nocheck else [])
            if rng.random() < 0.5:
                r = self.call(opts + ["-f", "-"], b, input=text)
            else:
                path = os.path.join(self.tmp, f"batch-{toks[0].rsplit('-', 1)[1]}")
                with open(path, "wb") as f:
                    f.write(text)
                r = self.call(opts + ["-f", path], b)
                os.unlink(path)
            if r.code == 0:
                ids = r.out.split()
                if len(ids) != count or not all(i.isdigit() for i in ids):
                    self.fail(f"run --bg -f with {count} commands printed {len(ids)} ids")
                b.add(exact=count)
                self.count("run --bg -f: queued")
                self.count("run --bg -f: jobs queued", count)
            elif r.code == 125 and REFUSED_RE.search(r.err_text()):
                with self.refused_mu:
                    self.refused_tokens.update(toks)
                self.count("run --bg -f: refused (build failed)")
                return "refused"
            else:
                self.fail(f"run --bg -f ({count} commands): {r.describe()}")
        finally:
            b.lock.release_shared()

    def act_fg(self, rng, b):
        if not b.lock.acquire_shared(1.0):
            return self.count("lock busy")
        settle = False
        kill_check = None
        try:
            x = rng.random()
            variant = ("plain" if x < 0.50 else "check" if x < 0.60 else "sigint" if x < 0.78
                       else "kill" if x < 0.95 else "timeout")
            tok = self.token(b)
            big_out = big_err = 0
            orphan = rng.random() < 0.15
            flags = []
            sleep_ms = None
            code = 1 if rng.random() < 0.2 else 0
            if variant == "check":
                flags = ["--check"]
                code = 1 if rng.random() < 0.25 else 0
            elif variant == "timeout":
                flags = ["--timeout", "100ms"]
                sleep_ms = 600
            elif rng.random() < 0.3 or variant == "kill":
                big_out = rng.randint(100_000, 600_000)
            if variant != "timeout" and rng.random() < 0.15:
                big_err = rng.randint(50_000, 300_000)
            if variant == "kill":
                sleep_ms = rng.randint(100, 300)
            if variant == "plain" and rng.random() < 0.3:
                flags.append("--no-check")
            script = self.script(rng, code, big_out, big_err, orphan, sleep_ms)
            args = ["run"] + flags + ["--", "sh", "-c", script, tok]
            p = self.spawn(args, b)
            sent = None
            if variant == "sigint":
                delay = rng.uniform(0, 0.4)
                if self.signals_blocked(p.pid):
                    time.sleep(delay)
                    if p.poll() is None:
                        p.send_signal(signal.SIGINT)
                        sent = "SIGINT"
                else:
                    self.note(f"distctl {p.pid} never blocked its signals")
            elif variant == "kill":
                # SIGKILL only once the job has visibly started: then it certainly was queued.
                # Meanwhile the pipe is not read, so a big output stalls the job at distd.
                end = time.monotonic() + 3.0
                while time.monotonic() < end and p.poll() is None and not self.started(tok):
                    time.sleep(0.02)
                if p.poll() is None and self.started(tok):
                    time.sleep(rng.uniform(0, 0.2))
                    if p.poll() is None:
                        p.kill()
                        sent = "SIGKILL"
            r = self.finish(p)
            if sent == "SIGKILL" and r.code == -signal.SIGKILL:
                b.add(exact=1)
                self.count("run: killed mid-stream")
                kill_check = tok
                return
            ok_codes = {code, 125, 143, 137}
            if variant == "timeout":
                ok_codes = {124, 125, 143, 137}
            if sent == "SIGINT":
                ok_codes.add(130)
            if r.code not in ok_codes:
                self.fail(f"run ({variant}{', ' + sent if sent else ''}): {r.describe()}")
                b.add(amb=1)
                return
            if r.code == 130:
                self.count("run: interrupted (130)")
                # Gone once distctl has exited: it cancels the job and waits for its end.
                self.check_token_gone(tok, "run interrupted by SIGINT", allowance=0.0)
                settle = True  # a request cancelled on the way may still reach distd: wait
                return
            if r.code == 125:
                err = r.err_text()
                if QUEUED_RE.search(err):
                    b.add(exact=1)
                    self.count("run: cancelled while queued (125)")
                elif REFUSED_RE.search(err):
                    with self.refused_mu:
                        self.refused_tokens.add(tok)
                    self.count("run: refused (125)")
                    return "refused"
                else:
                    self.fail(f"run: 125 for no reason a soak expects: {r.describe()}")
                    b.add(amb=1)
                return
            b.add(exact=1)
            if r.code in (143, 137):
                if "stopped" not in r.err_text():
                    self.fail(f"run: {r.code} without saying the job was stopped: "
                              f"{r.describe()}")
                self.count("run: stopped by an abort")
                return
            if r.code == 124:
                self.count("run: timed out (124)")
                return
            self.count(f"run {variant}: exit {r.code}")
            want_out = (b"y\n" * (big_out // 2 + 1))[:big_out]
            if r.out != want_out:
                self.fail(f"run: the job's stdout arrived as {len(r.out)} bytes, "
                          f"{big_out} were written ({r.describe()})")
            want_err = (b"e\n" * (big_err // 2 + 1))[:big_err]
            if not r.err.startswith(want_err):
                self.fail(f"run: the job's stderr ({big_err} bytes) did not arrive whole: "
                          f"{len(r.err)} bytes")
        finally:
            if settle:
                time.sleep(0.3)
                b.add(exact=1) if self.started(tok) else b.add(amb=1)
            b.lock.release_shared()
            if kill_check is not None:
                # distd notices the dead client and cancels its job: SIGTERM, SIGKILL after
                # the grace.
                self.check_token_gone(kill_check, "run killed with SIGKILL",
                                      allowance=GRACE_S + SURVIVOR_ALLOWANCE)

    def check_token_gone(self, tok, what, allowance):
        end = time.monotonic() + allowance
        while True:
            alive = [pid for pid, t in self.scan_leaders() if t == tok]
            if not alive:
                return
            if time.monotonic() >= end:
                self.fail(f"{what}: its job {tok} (pid {alive}) still runs "
                          f"{allowance:.1f}s after distctl exited")
                return
            time.sleep(0.05)

    def act_wait(self, rng, b):
        if not b.lock.acquire_shared(1.0):
            return self.count("lock busy")
        try:
            gen = b.gen
            # Only jobs queued before the call say the build must exist: a submit running
            # alongside may create it while the wait is on its way.
            exact_before = b.exact
            x = rng.random()
            variant = "plain" if x < 0.75 else "kill" if x < 0.92 else "sigterm"
            p = self.spawn(["wait"], b)
            sent = None
            if variant != "plain" and self.signals_blocked(p.pid):
                time.sleep(rng.uniform(0, 0.3))
                if p.poll() is None:
                    if variant == "kill":
                        p.kill()
                        sent = "SIGKILL"
                    else:
                        p.send_signal(signal.SIGTERM)
                        sent = "SIGTERM"
            r = self.finish(p)
            if sent == "SIGKILL" and r.code == -signal.SIGKILL:
                return self.count("wait: killed mid-stream")
            ok = {0, 1, 125} | ({143} if sent == "SIGTERM" else set())
            if r.code not in ok:
                return self.fail(f"wait ({variant}): {r.describe()}")
            if r.code == 125:
                if "no build named" not in r.err_text():
                    return self.fail(f"wait: {r.describe()}")
                if exact_before:
                    return self.fail(f"wait: distd does not know build {b.name}, to which "
                                     f"{exact_before} jobs were submitted: {r.describe()}")
                return self.count("wait: unknown build (125)")
            if not exact_before and r.code == 0 and "nothing to wait for" in r.err_text():
                return self.count("wait: nothing to wait for (0)")
            if not exact_before and r.code == 143 and "no build named" in r.err_text():
                # Signalled while distd looked the build up (a closed one's outcome comes from
                # the journal): there was no build to abort, and a submit running alongside
                # may have started the next generation since.
                return self.count("wait: SIGTERM with no build to abort (143)")
            if not exact_before and r.code == 1:
                # The build was closed, and distd answered with the journal's outcome of that
                # generation: a submit running alongside may have started the next one since.
                return self.count("wait: a closed generation's outcome (1)")
            self.count(f"wait: {r.code}")
            if r.code in (1, 143):
                if r.code == 1 and b"FAILED: " not in r.err:
                    self.fail(f"wait: 1 without FAILED: {r.describe()}")
                self.check_nothing_runs(b, gen, f"wait ({r.code})")
                e, _ = self.build_status(b)
                if e is not None and e.get("state") != "BUILD_DEAD":
                    self.fail(f"wait exited {r.code}{' after ' + sent if sent else ''} but build "
                              f"{b.name} is {e.get('state')}, not aborted (stderr: "
                              f"{r.err_text(200)!r})")
        finally:
            b.lock.release_shared()

    def act_abort(self, rng, b):
        if not b.lock.acquire_shared(1.0):
            return self.count("lock busy")
        try:
            gen = b.gen
            exact_before = b.exact
            args = ["abort", "--reason", f"soak abort {rng.randrange(1000)}"]
            if rng.random() < 0.25:
                args.append("--drain")
            elif rng.random() < 0.3:
                args += ["--grace", "300ms"]
            r = self.call(args, b)
            if r.code == 125 and "no build named" in r.err_text():
                if exact_before:
                    self.fail(f"abort: distd does not know build {b.name}, to which "
                              f"{exact_before} jobs were submitted")
                return self.count("abort: unknown build (125)")
            if r.code != 0:
                return self.fail(f"abort: {r.describe()}")
            self.count("abort: 0" + (" (drain)" if "--drain" in args else ""))
            self.check_nothing_runs(b, gen, "abort")
            e, _ = self.build_status(b)
            if e is not None and e.get("state") != "BUILD_DEAD":
                self.fail(f"abort returned but build {b.name} is {e.get('state')}")
        finally:
            b.lock.release_shared()

    def act_close(self, rng, b, timeout=2.0, deadline=None):
        if not b.lock.acquire_exclusive(timeout):
            return self.count("close: lock busy")
        try:
            e, r = self.build_status(b, deadline=deadline)
            if e is None:
                if r.code == 125 and "no build named" in r.err_text():  # nothing queued yet
                    if b.exact:
                        self.fail(f"close: distd does not know build {b.name}, to which "
                                  f"{b.exact} jobs were submitted (generation {b.gen})")
                    self.count("close: build unknown")
                return
            idle = self.verify_generation(b, e, "before close")
            if not idle and rng.random() < 0.5:
                return self.count("close: not tried, build busy")
            c = self.call(["build", "close", b.name], deadline=deadline)
            if c.code == 0:
                self.count("close: 0" if idle else "close: 0, unverified")
                if idle:
                    self.verified_gens += 1
                else:
                    self.unverified_gens += 1
                self.note(f"build {b.name} generation {b.gen} closed: exact {b.exact} "
                          f"amb {b.amb}")
                b.gen += 1
                b.exact = b.amb = 0
            elif c.code == 125 and not idle:
                self.count("close: refused, build busy (125)")
            else:
                self.fail(f"build close {b.name} (idle: {idle}): {c.describe()}")
        finally:
            b.lock.release_exclusive()

    def act_status(self, rng, b):
        if rng.random() < 0.5:
            r = self.call(["status", "--json"])
            if r.code != 0:
                return self.fail(f"status --json: {r.describe()}")
            self.check_status_json(r)
        else:
            self.build_status(b)
        self.count("status")

    def client(self, i):
        rng = random.Random(f"{self.seed}-{i}")
        actions = [(self.act_bg, 22), (self.act_batch, 5), (self.act_fg, 24),
                   (self.act_wait, 12), (self.act_abort, 4), (self.act_close, 9),
                   (self.act_status, 8)]
        funcs = [a for a, _ in actions]
        weights = [w for _, w in actions]
        try:
            while not self.stop.is_set():
                b = rng.choice(self.builds)
                act = rng.choices(funcs, weights)[0]
                outcome = act(rng, b)
                if outcome == "refused" and rng.random() < 0.5:
                    self.act_close(rng, b)
                time.sleep(rng.uniform(0, 0.05))
        except Exception:  # noqa: BLE001
            self.fail(f"client {i} crashed:\n{traceback.format_exc()}")

    # --- the daemon --------------------------------------------------------------------------

    def daemon_counts(self):
        fds = len(os.listdir(f"/proc/{self.dpid}/fd"))
        threads = len(os.listdir(f"/proc/{self.dpid}/task"))
        return fds, threads

    def daemon_detail(self):
        fds = {}
        for fd in os.listdir(f"/proc/{self.dpid}/fd"):
            try:
                fds[int(fd)] = os.readlink(f"/proc/{self.dpid}/fd/{fd}")
            except OSError:
                pass
        comms = collections.Counter()
        for t in os.listdir(f"/proc/{self.dpid}/task"):
            try:
                with open(f"/proc/{self.dpid}/task/{t}/comm") as f:
                    comms[f.read().strip()] += 1
            except OSError:
                pass
        return fds, comms

    def thread_excess(self, comms):
        """Threads above the start's, by name. gRPC's iomgr pools are created lazily and grow
        on demand, but never shrink before shutdown: grpc_core::Executor ("default-executor",
        "resolver-executor") up to 2 x CPUs each, the timer manager ("grpc_global_timer") by one
        whenever all its threads are busy running timers. Those are held to a cap instead of
        the start's count (and reported in the summary); every other thread must be gone."""
        excess = {}
        for name in set(comms) | set(self.base_comms):
            now, base = comms.get(name, 0), self.base_comms.get(name, 0)
            cap = GRPC_ONDEMAND_CAPS.get(name)
            if cap is not None:
                if now > max(base, cap):
                    excess[name] = f"{now} (cap {max(base, cap)})"
            elif now > base:
                excess[name] = f"{now} (at the start {base})"
        return excess

    def start_daemon(self):
        logf = open(self.daemon_log, "ab")
        self.daemon = subprocess.Popen(
            [self.distd, "--listen", "unix:" + self.sock, "--jobs", str(self.opts.jobs),
             "--grace", GRACE, "--log-level", "debug"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, cwd=self.tmp,
            env=self.env, start_new_session=True)
        logf.close()
        self.dpid = self.daemon.pid
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if self.daemon.poll() is not None:
                raise RuntimeError(f"distd exited {self.daemon.returncode} at start")
            if os.path.exists(self.sock):
                r = self.call(["status"], cap=5)
                if r.code == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("distd did not answer within 15 s")

    # --- the final checks --------------------------------------------------------------------

    def analyse_log(self):
        starts = collections.Counter()
        ends = collections.Counter()
        events = []
        try:
            with open(self.log, "rb") as f:
                data = f.read().decode(errors="replace")
        except FileNotFoundError:
            data = ""
        for line in data.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in ("start", "end"):
                events.append((parts[0], parts[1]))
                (starts if parts[0] == "start" else ends)[parts[1]] += 1
            elif line:
                self.fail(f"job log: a torn or foreign line {line[:120]!r}")
        twice = [t for t, c in starts.items() if c > 1]
        if twice:
            self.fail(f"{len(twice)} jobs started more than once, e.g. {twice[:5]}")
        orphan_ends = [t for t in ends if t not in starts]
        if orphan_ends:
            self.fail(f"{len(orphan_ends)} jobs ended without a start, e.g. {orphan_ends[:5]}")
        with self.refused_mu:
            ran = [t for t in starts if t in self.refused_tokens]
        if ran:
            self.fail(f"{len(ran)} jobs distd refused ran anyway, e.g. {ran[:5]}")
        complete = {t for t in starts if t in ends}
        cur = peak = 0
        for kind, tok in events:
            if tok not in complete:
                continue
            cur += 1 if kind == "start" else -1
            peak = max(peak, cur)
        if peak > self.opts.jobs:
            self.fail(f"the job log shows {peak} jobs between their start and end lines at "
                      f"once, with --jobs {self.opts.jobs}")
        self.count("jobs started (log)", len(starts))
        self.count("jobs ended (log)", len(ends))
        return peak

    def finale(self):
        """After the clients: abort and verify every build, then the daemon's health."""
        for b in self.builds:
            if time.monotonic() > self.final_deadline:
                self.fail(f"out of time: build {b.name} not checked at the end")
                continue
            if not b.lock.acquire_exclusive(5.0):
                self.fail(f"build {b.name}: still locked at the end")
                continue
            try:
                gen = b.gen
                r = self.call(["abort", "--reason", "soak: the end"], b,
                              deadline=self.final_deadline, cap=20)
                if r.code == 125 and "no build named" in r.err_text():
                    if b.exact:
                        self.fail(f"at the end distd does not know build {b.name}, to which "
                                  f"{b.exact} jobs were submitted")
                    continue
                if r.code != 0:
                    self.fail(f"the final abort: {r.describe()}")
                    continue
                self.check_nothing_runs(b, gen, "the final abort")
                e, _ = self.build_status(b, deadline=self.final_deadline)
                if e is None:
                    self.fail(f"no status of build {b.name} after the final abort")
                    continue
                if not self.verify_generation(b, e, "at the end"):
                    self.fail(f"build {b.name} still has jobs after the final abort: {e}")
                else:
                    self.verified_gens += 1
            finally:
                b.lock.release_exclusive()

        # No job process remains: leaders, their shells' children, the orphan sleeps.
        end = time.monotonic() + SURVIVOR_ALLOWANCE
        while True:
            left = self.scan_ours()
            if not left or time.monotonic() >= end:
                break
            time.sleep(0.05)
        if left:
            self.fail(f"{len(left)} job processes survived every build's abort "
                      f"(after {SURVIVOR_ALLOWANCE:.0f}s):\n  " + "\n  ".join(left[:20]))

        # distd's descriptors and threads back to where they started.
        end = time.monotonic() + max(1.0, min(SETTLE_ALLOWANCE,
                                              self.final_deadline + 6 - time.monotonic()))
        while True:
            fdmap, comms = self.daemon_detail()
            excess = self.thread_excess(comms)
            if (len(fdmap) <= self.base_fds and not excess) or time.monotonic() >= end:
                break
            time.sleep(0.1)
        self.end_counts = (len(fdmap), sum(comms.values()))
        self.end_comms = comms
        if len(fdmap) > self.base_fds:
            extra_fds = {k: v for k, v in sorted(fdmap.items()) if self.base_fdmap.get(k) != v}
            self.fail(f"distd's open descriptors did not return to the start's within "
                      f"{SETTLE_ALLOWANCE:.0f}s: {len(fdmap)}, at the start {self.base_fds}; "
                      f"new or changed: {extra_fds}")
        if excess:
            self.fail(f"distd's threads did not return to the start's within "
                      f"{SETTLE_ALLOWANCE:.0f}s: {sum(comms.values())}, at the start "
                      f"{self.base_threads}; by name now {dict(sorted(comms.items()))}, at the "
                      f"start {dict(sorted(self.base_comms.items()))}; over: {excess}")

        r = self.call(["status", "--json"], deadline=self.final_deadline, cap=10)
        if r.code != 0:
            self.fail(f"distd no longer answers: {r.describe()}")
        else:
            st = self.check_status_json(r) or {}
            n = lambda d, k: int(d.get(k, 0) or 0)  # noqa: E731
            busy = [b.get("name") for b in st.get("builds", [])
                    if n(b, "queued") or n(b, "running")]
            if n(st, "running") or n(st, "queued") or st.get("running_jobs") or busy:
                self.fail(f"after every build's abort distd still counts running "
                          f"{n(st, 'running')}, queued {n(st, 'queued')}, running jobs "
                          f"{len(st.get('running_jobs', []))}, busy builds {busy}")

    def stop_daemon(self):
        if self.daemon is None or self.daemon.poll() is not None:
            if self.daemon is not None:
                self.fail(f"distd had exited by itself with {self.daemon.returncode}")
            return
        self.daemon.send_signal(signal.SIGTERM)
        try:
            code = self.daemon.wait(10)
        except subprocess.TimeoutExpired:
            self.fail("distd did not exit within 10 s of SIGTERM; killed")
            os.killpg(self.dpid, signal.SIGKILL)
            self.daemon.wait()
            return
        if code != 0:
            self.fail(f"distd exited {code} on SIGTERM")
        if os.path.exists(self.sock):
            self.fail("distd left its socket behind")

    # --- the run -----------------------------------------------------------------------------

    def run(self):
        o = self.opts
        print(f"soak: seed {self.seed} (replay: {sys.argv[0]} --bin {o.bin} --seed {self.seed} "
              f"--seconds {o.seconds:g} --clients {o.clients} --jobs {o.jobs} "
              f"--builds {o.builds})", flush=True)
        print(f"soak: {self.tmp}, marker {self.marker}", flush=True)
        self.start_daemon()
        # Baseline once the first call's connection has been closed and gRPC has settled.
        time.sleep(0.5)
        self.base_fds, self.base_threads = self.daemon_counts()
        self.base_fdmap, self.base_comms = self.daemon_detail()
        self.note(f"baseline: {self.base_fds} fds, {self.base_threads} threads "
                  f"{dict(self.base_comms)}")

        mon = threading.Thread(target=self.monitor, name="monitor", daemon=True)
        mon.start()
        clients = [threading.Thread(target=self.client, args=(i,), name=f"client{i}",
                                    daemon=True) for i in range(o.clients)]
        for c in clients:
            c.start()
        while time.monotonic() < self.run_end and self.daemon.poll() is None:
            time.sleep(0.1)
        self.stop.set()
        if self.daemon.poll() is not None:
            self.fail(f"distd exited {self.daemon.returncode} during the run")
            return
        # Clients end their current action; long foreground runs and waits behind a queue
        # are ended by aborting every build.
        self.join(clients, time.monotonic() + 3)
        if any(c.is_alive() for c in clients):
            self.note("aborting every build to end the clients")
            aborts = [threading.Thread(
                target=lambda b=b: self.call(["abort", "--reason", "soak: time is up"], b,
                                             deadline=self.client_deadline))
                for b in self.builds]
            for a in aborts:
                a.start()
            self.join(aborts, self.client_deadline + 1)
        self.join(clients, self.client_deadline + 2)
        stuck = [c.name for c in clients if c.is_alive()]
        if stuck:
            self.fail(f"clients still busy at the deadline: {stuck}")
            self.kill_procs()
            self.join(clients, time.monotonic() + 3)
        self.stats["seconds of clients"] = round(self.now(), 1)
        self.finale()
        self.stop_monitor.set()
        mon.join(2)
        self.peak = self.analyse_log()
        self.stop_daemon()

    def daemon_log_lines(self):
        try:
            with open(self.daemon_log, "rb") as f:
                return f.read().decode(errors="replace").splitlines()
        except OSError:
            return []

    def check_daemon_log(self):
        """A sanitizer's report, or absl's raw log (a fatal Mutex misuse, a deadlock), in
        distd's log is a failure, whenever it came."""
        marks = [ln for ln in self.daemon_log_lines()
                 if any(m in ln for m in SANITIZER_MARKS + ("RAW: ",))]
        if marks:
            self.fail("distd's log has a sanitizer's or absl's report:\n  "
                      + "\n  ".join(marks[:10]))

    def log_excerpt(self):
        """From just before the first report in distd's log if there is one, else its end."""
        lines = self.daemon_log_lines()
        for i, ln in enumerate(lines):
            if any(m in ln for m in SANITIZER_MARKS + ("RAW: ",)):
                return "\n".join(lines[max(0, i - 5):i + 60])
        return "\n".join(lines[-40:])

    @staticmethod
    def join(threads, deadline):
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def kill_procs(self):
        with self.procs_mu:
            procs = list(self.procs)
        for p in procs:
            if p.poll() is None:
                p.kill()

    def cleanup(self):
        """Whatever happened: no process of this run survives it."""
        self.stop.set()
        self.stop_monitor.set()
        self.kill_procs()
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.dpid, signal.SIGKILL)
                self.daemon.wait()
        for line in self.scan_ours():
            pid = int(line.split()[1])
            try:
                os.kill(pid, signal.SIGKILL)  # ours by the run's unique marker or sleep length
            except OSError:
                pass

    def report(self):
        s = self.stats
        print(f"soak: {self.now():.1f}s; pool observed at most {self.max_live} job leaders "
              f"alive (--jobs {self.opts.jobs}; {self.monitor_scans} samples, "
              f"{self.pool_violations} over), job log at most "
              f"{getattr(self, 'peak', '?')} between start and end", flush=True)
        if hasattr(self, "base_fds") and hasattr(self, "end_counts"):
            grown = {n: f"{self.base_comms.get(n, 0)}->{c}" for n, c in self.end_comms.items()
                     if n in GRPC_ONDEMAND_CAPS and c != self.base_comms.get(n, 0)}
            print(f"soak: distd fds {self.base_fds} -> {self.end_counts[0]}, threads "
                  f"{self.base_threads} -> {self.end_counts[1]}"
                  + (f" (gRPC on-demand pools, capped not counted: {grown})" if grown else ""))
        print(f"soak: generations verified {self.verified_gens} (closed unverified: "
              f"{self.unverified_gens})")
        for k in sorted(s):
            print(f"soak:   {k}: {s[k]}")


def main():
    ap = argparse.ArgumentParser(description="Soak test of distd and distctl.")
    ap.add_argument("--bin", required=True, help="the directory with distd and distctl")
    ap.add_argument("--seconds", type=float, default=60, help="how long clients run (60)")
    ap.add_argument("--seed", type=int, default=None, help="replay a run's choices")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=3, help="distd --jobs")
    ap.add_argument("--builds", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="keep the run's directory")
    opts = ap.parse_args()
    if opts.seed is None:
        opts.seed = int.from_bytes(os.urandom(4), "little")
    opts.bin = os.path.abspath(opts.bin)
    for exe in ("distd", "distctl"):
        if not os.access(os.path.join(opts.bin, exe), os.X_OK):
            ap.error(f"no {exe} in {opts.bin}")
    if opts.clients < 1 or opts.jobs < 1 or opts.builds < 1 or opts.seconds <= 0:
        ap.error("--clients, --jobs, --builds and --seconds must be positive")

    soak = Soak(opts)

    def on_signal(signo, _frame):
        raise Interrupted(signal.Signals(signo).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        soak.run()
    except Interrupted as e:
        soak.fail(f"the soak itself was interrupted ({e})")
    except Exception:  # noqa: BLE001
        soak.fail(f"the soak crashed:\n{traceback.format_exc()}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        soak.cleanup()
        soak.check_daemon_log()
    soak.report()
    if soak.failures:
        print(f"soak: {len(soak.failures)} failures (seed {soak.seed}):", flush=True)
        kinds = collections.OrderedDict()  # alike: the same words, numbers aside
        for f in soak.failures:
            key = re.sub(r"[0-9]+", "#", f.split("] ", 1)[-1])[:60]
            kinds.setdefault(key, []).append(f)
        for i, same in enumerate(kinds.values()):
            if i == 25:
                print(f"  ... and more (see {soak.action_log_path})")
                break
            more = f" (and {len(same) - 1} more like it)" if len(same) > 1 else ""
            print("  - " + same[0].replace("\n", "\n    ") + more)
        print("--- distd log (its first report, else its last 40 lines)")
        print(soak.log_excerpt())
        shutil.rmtree(os.path.join(soak.tmp, "bin"), ignore_errors=True)  # copies of --bin
        print(f"soak: kept {soak.tmp} (distd.log, jobs.log, actions.log)")
        print(f"soak: 0 passed, 1 failed (seed {soak.seed})", flush=True)
        return 1
    soak.action_log.close()
    if not opts.keep:
        shutil.rmtree(soak.tmp, ignore_errors=True)
    print(f"soak: 1 passed, 0 failed (seed {soak.seed})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
