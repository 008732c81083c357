#!/usr/bin/env python3
"""distd side by side with make, ninja, xargs, GNU parallel and task-spooler.

Runs the workloads W1-W8 of bench/README.md for distd and its peers in one run, several
rounds, and writes a Markdown report: the machine, the versions, for every workload and tool
the median and min-max, the ratio that the workload's target is about, and whether it is met.

Rounds are interleaved (round 1 of every tool, then round 2 of every tool, ...), so that a
noisy neighbour or a frequency change of a shared machine spreads over all tools instead of
landing on one. Figures are wall times taken here, around the commands a user would type.

Usage: bench.py --bin-dir DIR [--rounds N] [--out FILE] [--smoke] [--only W1,W3]

--smoke runs every workload once at a tiny size: it checks that the script, the peers and
distd still work together, and the behaviour the workloads rely on (every job of W7 ran,
W8 never ran more than 2 compilers at once), not the targets. The test suite runs it.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
GiB = 1 << 30

# Sizes of the workloads: the full benchmark, and the smoke run of the test suite.
FULL = dict(w1_jobs=2000, w2_loops=200, w3_queued=[0, 10_000, 100_000], w4_queued=100_000,
            w5_queued=100_000, w6_bytes=GiB, w7_clients=16, w7_batches=10, w7_batch=50,
            w8_files=300, w5_rounds=3)
SMOKE = dict(w1_jobs=40, w2_loops=5, w3_queued=[0, 100, 1000], w4_queued=1000, w5_queued=1000,
             w6_bytes=1 << 20, w7_clients=4, w7_batches=2, w7_batch=5, w8_files=6, w5_rounds=1)


class BenchError(Exception):
    pass


def run(argv, env=None, check=True, stdout=subprocess.DEVNULL):
    """Runs argv to completion; returns its CompletedProcess. Raises BenchError on failure."""
    proc = subprocess.run(argv, env=env, stdout=stdout, stderr=subprocess.PIPE)
    if check and proc.returncode != 0:
        raise BenchError(f"{' '.join(map(str, argv))} exited {proc.returncode}: "
                         f"{proc.stderr.decode(errors='replace').strip()[-2000:]}")
    return proc


def timed(argv, **kwargs):
    start = time.perf_counter()
    run(argv, **kwargs)
    return time.perf_counter() - start


class Daemon:
    """A distd of its own on a private socket, with distctl pointed at it; its journal in its
    own directory, or none."""

    def __init__(self, bin_dir, work, jobs, journal=True, extra=()):
        self.distd = str(bin_dir / "distd")
        self.distctl = str(bin_dir / "distctl")
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="distd-", dir=work))
        self.dir.chmod(0o700)
        self.addr = f"unix:{self.dir}/distd.sock"
        self.env = dict(os.environ, DISTD_ADDR=self.addr)
        self.env.pop("DISTD_BUILD", None)
        self.log = open(self.dir / "distd.log", "wb")
        state = ["--state-dir", str(self.dir / "state")] if journal else ["--no-journal"]
        self.proc = subprocess.Popen(
            [self.distd, "--listen", self.addr, "--jobs", str(jobs)] + state + list(extra),
            stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while run(self.ctl("status"), check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise BenchError(f"distd did not start; see {self.dir / 'distd.log'}")
            time.sleep(0.02)

    def ctl(self, *args, build=None):
        argv = [self.distctl, "--addr", self.addr]
        if build:
            argv += ["--build", build]
        return argv + list(args)

    def status(self, build=None):
        out = run(self.ctl("status", "--json", build=build), stdout=subprocess.PIPE).stdout
        return json.loads(out)

    def running(self, build):
        return int(self.status(build)["builds"][0]["running"])

    def wait_running(self, build, n):
        deadline = time.monotonic() + 30
        while self.running(build) < n:
            if time.monotonic() > deadline:
                raise BenchError(f"build {build}: {n} jobs never ran at once")
            time.sleep(0.01)

    def close(self, build):
        run(self.ctl("abort", "--reason", "benchmark round over", build=build))
        run(self.ctl("build", "close", build))

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise BenchError("no VmRSS for distd")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if self.proc.returncode != 0:
            raise BenchError(f"distd exited {self.proc.returncode}; see {self.dir / 'distd.log'}")


class TaskSpooler:
    """A task-spooler server of its own (its socket and output files in `work`)."""

    def __init__(self, work, slots):
        self.env = dict(os.environ, TS_SOCKET=str(work / "tsp.sock"), TMPDIR=str(work))
        self.slots = slots
        self.restart()

    def restart(self):
        self.kill()
        run(["tsp", "-S", str(self.slots)], env=self.env)

    def kill(self):
        run(["tsp", "-K"], env=self.env, check=False)


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


# --- The workloads. Each returns {series name: [sample per round]} plus, for the report, a
# --- unit and a note; samples are seconds unless the unit says otherwise.


def distd_batch(d, cmds, build):
    """Seconds for distd to run the commands of file `cmds` as one batch, then wait."""
    start = time.perf_counter()
    run(d.ctl("run", "--bg", "-f", str(cmds), build=build), env=d.env)
    run(d.ctl("wait", build=build), env=d.env)
    seconds = time.perf_counter() - start
    run(d.ctl("build", "close", build))
    return seconds


def w1_dispatch(ctx):
    n = ctx.sizes["w1_jobs"]
    work = ctx.dir("w1")
    cmds = write_lines(work / "cmds", ["true"] * n)
    xs = write_lines(work / "xs", ["x"] * n)
    write_lines(work / "build.ninja", ["rule run", "  command = true"] +
                [f"build t{i}: run" for i in range(n)])
    write_lines(work / "Makefile", [".PHONY: all " + " ".join(f"t{i}" for i in range(n)),
                                    "all: " + " ".join(f"t{i}" for i in range(n))] +
                [f"t{i}:\n\ttrue" for i in range(n)])
    tsp_loop = (f"i=0; while [ $i -lt {n} ]; do tsp -n true >/dev/null; i=$((i+1)); done; "
                f"tsp -w {n - 2} >/dev/null; tsp -w {n - 1} >/dev/null")
    d = ctx.daemon
    tsp = ctx.tsp
    series = {k: [] for k in ("distd", "distd, no journal", "ninja -j2", "make -j2", "xargs -P2",
                              "parallel -j2", "tsp (2 slots)")}
    for r in ctx.rounds():
        series["distd"].append(distd_batch(d, cmds, f"w1-{r}"))
        series["distd, no journal"].append(distd_batch(ctx.bare, cmds, f"w1-{r}"))
        series["ninja -j2"].append(timed(["ninja", "-C", str(work), "-j2"]))
        series["make -j2"].append(timed(["make", "-C", str(work), "-j2", "-s"]))
        series["xargs -P2"].append(timed(["xargs", "-P2", "-n1", "-a", str(xs), "true"]))
        series["parallel -j2"].append(
            timed(["parallel", "--will-cite", "-j2", "-a", str(cmds)]))
        tsp.restart()
        series["tsp (2 slots)"].append(timed(["sh", "-c", tsp_loop], env=tsp.env))
    return Result(f"{n} x `true`, pool of 2: submit all, then wait", series, "s",
                  target=("distd", "ninja -j2", "<=", 1.10),
                  target2=("distd", "distd, no journal", "<=", 1.10),
                  note="xargs runs `true x` (one argument a line); ninja and parallel run "
                       "each command through /bin/sh, make, xargs and distd exec it directly.")


def w2_round_trip(ctx):
    n = ctx.sizes["w2_loops"]
    d = ctx.daemon
    tsp = ctx.tsp
    tsp.restart()
    loop = "i=0; while [ $i -lt %d ]; do %s >/dev/null || exit 1; i=$((i+1)); done"
    distd_loop = loop % (n, f"'{d.distctl}' run -- true")
    tsp_loop = loop % (n, "tsp -f true")
    series = {"distctl run": [], "distctl run, no journal": [], "tsp -f": []}
    for r in ctx.rounds():
        series["distctl run"].append(timed(["sh", "-c", distd_loop], env=d.env) / n)
        series["distctl run, no journal"].append(
            timed(["sh", "-c", distd_loop], env=ctx.bare.env) / n)
        series["tsp -f"].append(timed(["sh", "-c", tsp_loop], env=tsp.env) / n)
        run(d.ctl("build", "close", "default"), check=False)
        run(ctx.bare.ctl("build", "close", "default"), check=False)
    return Result(f"`distctl run -- true` {n} times from a shell loop, per invocation",
                  series, "ms", target=("distctl run", "tsp -f", "<=", 2.0))


def queue_file(work, name, first, queued):
    # About 30 bytes of argv a job, as a compile command of a small project.
    return write_lines(work / name, first + [f"true -c src/unit_{i % 10000:04d}.c -O2 -o u.o"
                                             for i in range(queued)])


def w3_abort(ctx):
    work = ctx.dir("w3")
    d = ctx.daemon
    series = {}
    for queued in ctx.sizes["w3_queued"]:
        series[f"{queued} queued"] = []
    files = {q: queue_file(work, f"q{q}", ["sleep 1000", "sleep 1000"], q)
             for q in ctx.sizes["w3_queued"]}
    for r in ctx.rounds():
        for queued, f in files.items():
            build = f"w3-{queued}-{r}"
            run(d.ctl("run", "--bg", "-f", str(f), build=build), env=d.env)
            d.wait_running(build, 2)
            series[f"{queued} queued"].append(timed(d.ctl("abort", build=build)))
            run(d.ctl("build", "close", build))
    ctx.w3_zero = statistics.median(series[f"{ctx.sizes['w3_queued'][0]} queued"])
    big = f"{ctx.sizes['w3_queued'][-1]} queued"
    return Result("`distctl abort` of a build with 2 `sleep` running on a pool of 2 and N "
                  "queued, until it returns", series, "ms",
                  target=(big, f"{ctx.sizes['w3_queued'][0]} queued", "<=", 1.5))


def w4_fail_fast(ctx):
    work = ctx.dir("w4")
    d = ctx.daemon
    fifo = work / "go"
    os.mkfifo(fifo)
    queued = ctx.sizes["w4_queued"]
    f = queue_file(work, "q", [f"sh -c 'read x < {fifo}; exit 1'", "sleep 1000"], queued)
    series = {f"{queued} queued": []}
    for r in ctx.rounds():
        build = f"w4-{r}"
        run(d.ctl("run", "--bg", "-f", str(f), build=build), env=d.env)
        d.wait_running(build, 2)
        waiter = subprocess.Popen(d.ctl("wait", build=build), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # let the waiter connect: the figure is about the daemon, not dialling
        start = time.perf_counter()
        with open(fifo, "w") as go:
            go.write("x\n")
        code = waiter.wait()
        series[f"{queued} queued"].append(time.perf_counter() - start)
        if code != 1:
            raise BenchError(f"distctl wait exited {code}, not 1, after a checked failure")
        run(d.ctl("build", "close", build))
    if not hasattr(ctx, "w3_zero"):
        raise BenchError("W4 compares with W3; run W3 too")
    series["W3 at 0 queued"] = [ctx.w3_zero]
    return Result(f"a checked job fails with {queued} queued behind it: from its exit to "
                  "`distctl wait` returning", series, "ms",
                  target=(f"{queued} queued", "W3 at 0 queued", "<=", 1.5))


def w5_memory(ctx):
    work = ctx.dir("w5")
    queued = ctx.sizes["w5_queued"]
    hold = write_lines(work / "hold", ["sleep 1000", "sleep 1000"])
    f = queue_file(work, "q", [], queued)
    series = {"RSS growth per queued job": []}
    for r in ctx.rounds(ctx.sizes["w5_rounds"]):
        d = Daemon(ctx.bin_dir, ctx.work, jobs=2)
        try:
            run(d.ctl("run", "--bg", "-f", str(hold), build="hold"), env=d.env)
            d.wait_running("hold", 2)
            before = d.rss_bytes()
            run(d.ctl("run", "--bg", "-f", str(f), build="queued"), env=d.env)
            if int(d.status("queued")["builds"][0]["queued"]) != queued:
                raise BenchError("W5: the jobs are not all queued")
            series["RSS growth per queued job"].append((d.rss_bytes() - before) / queued)
            d.close("queued")
            d.close("hold")
        finally:
            d.stop()
    return Result(f"distd's RSS growth with {queued} jobs queued (argv of about 30 bytes)",
                  series, "bytes", target=("RSS growth per queued job", 1024, "<=", 1.0))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def w6_output(ctx):
    size = ctx.sizes["w6_bytes"]
    d = ctx.daemon
    producer = f"head -c {size} /dev/zero"
    work = ctx.dir("w6")
    # A distd that also listens on TCP with TLS and a token (docker/gen-certs.sh's): a remote
    # caller's output always comes through gRPC, as does a local one's into a regular file.
    certs = work / "certs"
    run([str(HERE.parent / "docker" / "gen-certs.sh"), str(certs)], stdout=subprocess.DEVNULL)
    port = free_port()
    tls = Daemon(ctx.bin_dir, work, jobs=2, extra=[
        "--listen", f"tcp:127.0.0.1:{port}", "--tls-cert", str(certs / "server.crt"),
        "--tls-key", str(certs / "server.key"), "--token-file", str(certs / "tokens")])
    tls_ctl = [tls.distctl, "--addr", f"tcp:127.0.0.1:{port}", "--tls-ca", str(certs / "ca.crt"),
               "--token-file", str(certs / "admin.token")]
    command = ["run", "--", "head", "-c", str(size), "/dev/zero"]
    series = {"distctl run": [], "distctl run, no journal": [],
              "distctl run into a file (through gRPC)": [],
              "distctl run over TLS on loopback": [], "pipe to cat": []}
    try:
        for r in ctx.rounds():
            for name, daemon in (("distctl run", d), ("distctl run, no journal", ctx.bare)):
                with open(os.devnull, "wb") as null:
                    series[name].append(size / timed(daemon.ctl(*command), stdout=null))
                run(daemon.ctl("build", "close", "default"), check=False)
            with open(work / "out", "wb") as out:
                series["distctl run into a file (through gRPC)"].append(
                    size / timed(tls.ctl(*command), stdout=out))
            with open(os.devnull, "wb") as null:
                series["distctl run over TLS on loopback"].append(
                    size / timed(tls_ctl + command, stdout=null))
            run(tls.ctl("build", "close", "default"), check=False)
            series["pipe to cat"].append(
                size / timed(["sh", "-c", f"{producer} | cat >/dev/null"]))
    finally:
        tls.stop()
        (work / "out").unlink(missing_ok=True)
    return Result(f"a job writes {size >> 20} MiB to stdout, read to /dev/null (or a file); "
                  "throughput", series, "MB/s", higher_is_better=True,
                  target=("distctl run", "pipe to cat", ">=", 0.5))


def w7_many_clients(ctx):
    work = ctx.dir("w7")
    d = ctx.daemon
    clients, batches, batch = (ctx.sizes[k] for k in ("w7_clients", "w7_batches", "w7_batch"))
    f = write_lines(work / "batch", ["true"] * batch)
    # W1's distd figure, taken again in each round just before the clients: compared with a
    # W1 measured minutes earlier, the ratio would swing with the machine's neighbours.
    ref_jobs = ctx.sizes["w1_jobs"]
    ref = write_lines(work / "w1", ["true"] * ref_jobs)
    series = {"throughput (jobs/s)": [], "slowest build / mean": [], "W1 throughput (jobs/s)": []}
    for r in ctx.rounds():
        series["W1 throughput (jobs/s)"].append(ref_jobs / distd_batch(d, ref, f"w7-w1-{r}"))
        finished = [None] * clients
        errors = []
        gate = threading.Barrier(clients + 1)

        def client(c):
            build = f"w7-{r}-{c}"
            try:
                gate.wait()
                for _ in range(batches):
                    run(d.ctl("run", "--bg", "-f", str(f), build=build), env=d.env)
                run(d.ctl("wait", build=build), env=d.env)
                finished[c] = time.perf_counter()
            except Exception as e:  # reported below, with the round failing
                errors.append(e)

        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        gate.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        if errors:
            raise BenchError(f"W7: {errors[0]}")
        total = max(finished) - start
        spans = [t - start for t in finished]
        series["throughput (jobs/s)"].append(clients * batches * batch / total)
        series["slowest build / mean"].append(max(spans) / statistics.mean(spans))
        for c in range(clients):
            b = d.status(f"w7-{r}-{c}")["builds"][0]
            if int(b["succeeded"]) != batches * batch:
                raise BenchError(f"W7: build {c} ran {b['succeeded']} of {batches * batch}")
            run(d.ctl("build", "close", f"w7-{r}-{c}"))
    return Result(f"{clients} clients at once, each its own build of {batches} x {batch} "
                  "`true` submitted in batches, then wait", series, "",
                  higher_is_better=True,
                  target=("throughput (jobs/s)", "W1 throughput (jobs/s)", ">=", 0.9),
                  target2=("slowest build / mean", 1.0, "<=", 1.5), comparable=False)


PROBE = """#!/bin/sh
# Counts the compilers running at once: +1 before, -1 after, the maximum kept.
d=$(dirname "$0")
flock "$d/lock" sh -c 'n=$(($(cat "$1/n") + 1)); echo $n >"$1/n";
  [ "$n" -gt "$(cat "$1/max")" ] && echo $n >"$1/max"; true' sh "$d"
"$@"
rc=$?
flock "$d/lock" sh -c 'echo $(($(cat "$1/n") - 1)) >"$1/n"' sh "$d"
exit $rc
"""


def w8_launcher(ctx):
    work = ctx.dir("w8")
    d = ctx.daemon
    files = ctx.sizes["w8_files"]
    src = work / "project"
    run([sys.executable, str(HERE / "gen_c_project.py"), str(src), str(files)])
    probe_dir = work / "probe"
    probe_dir.mkdir()
    probe = probe_dir / "probe.sh"
    probe.write_text(PROBE)
    probe.chmod(0o755)

    def configure(name, launcher):
        build_dir = work / name
        argv = ["cmake", "-S", str(src), "-B", str(build_dir), "-G", "Ninja",
                "-DCMAKE_BUILD_TYPE=Release"]
        if launcher:
            argv.append("-DCMAKE_C_COMPILER_LAUNCHER=" + ";".join(launcher))
        run(argv, env=d.env)
        return build_dir

    plain = configure("plain", None)
    launched = configure("launched", [d.distctl, "run", "--"])
    probed_plain = configure("probed-plain", [str(probe)])
    probed = configure("probed", [d.distctl, "run", "--", str(probe)])

    def build(build_dir, jobs, name):
        run(["ninja", "-C", str(build_dir), "-t", "clean"])
        env = dict(d.env, DISTD_BUILD=name)
        t = timed(["ninja", "-C", str(build_dir), f"-j{jobs}"], env=env)
        run(d.ctl("build", "close", name), check=False)
        return t

    def max_at_once(build_dir, jobs):
        (probe_dir / "n").write_text("0\n")
        (probe_dir / "max").write_text("0\n")
        build(build_dir, jobs, "w8-probe")
        return int((probe_dir / "max").read_text())

    series = {"ninja -j16, distctl run, pool 2": [], "ninja -j2": []}
    for r in ctx.rounds():
        series["ninja -j16, distctl run, pool 2"].append(build(launched, 16, f"w8-{r}"))
        series["ninja -j2"].append(build(plain, 2, f"w8-plain-{r}"))
    # Not timed: the same builds with every compiler counted.
    w8_max = max_at_once(probed, 16)
    plain_max = max_at_once(probed_plain, 2)
    if not 1 <= w8_max <= 2:
        raise BenchError(f"W8: {w8_max} compilers ran at once through a pool of 2")
    if plain_max != 2 and files >= 4:
        raise BenchError(f"W8: the probe counted {plain_max} under ninja -j2; it is broken")
    return Result(f"{files} generated C files built by ninja through "
                  "`CMAKE_C_COMPILER_LAUNCHER=distctl;run;--`, distd's pool at 2, against "
                  "plain `ninja -j2`", series, "s",
                  target=("ninja -j16, distctl run, pool 2", "ninja -j2", "<=", 1.15),
                  note=f"At most {w8_max} compilers ran at once through distd "
                       f"({plain_max} under plain ninja -j2), counted in an extra untimed "
                       "build of each.")


class Result:
    def __init__(self, what, series, unit, target, target2=None, higher_is_better=False,
                 note="", comparable=True):
        self.what = what
        self.series = series
        self.unit = unit
        self.targets = [t for t in (target, target2) if t]
        self.higher_is_better = higher_is_better
        self.note = note
        # False when the series measure different things, so that no ratio between them is shown.
        self.comparable = comparable

    def value(self, ref):
        return ref if isinstance(ref, (int, float)) else statistics.median(self.series[ref])

    def checks(self):
        out = []
        for subject, ref, op, bound in self.targets:
            ratio = self.value(subject) / self.value(ref)
            met = ratio <= bound if op == "<=" else ratio >= bound
            if ref == 1.0:
                text = f"{subject} {op} {bound}"
            else:
                ref_name = ref if isinstance(ref, str) else f"{ref} {self.unit}".strip()
                text = f"{subject} / {ref_name} {op} {bound}"
            out.append((text, ratio, met))
        return out


WORKLOADS = [("W1", "dispatch", w1_dispatch), ("W2", "client round trip", w2_round_trip),
             ("W3", "abort latency", w3_abort), ("W4", "fail-fast latency", w4_fail_fast),
             ("W5", "queued memory", w5_memory), ("W6", "output", w6_output),
             ("W7", "many clients", w7_many_clients), ("W8", "launcher", w8_launcher)]


class Context:
    def __init__(self, args, work):
        self.bin_dir = args.bin_dir.resolve()
        self.work = work
        self.sizes = SMOKE if args.smoke else FULL
        self.round_count = 1 if args.smoke else args.rounds
        self.daemon = None
        self.tsp = None

    def rounds(self, count=None):
        return range(count or self.round_count)

    def dir(self, name):
        d = self.work / name
        d.mkdir()
        return d


def scale(unit, v):
    return {"ms": v * 1e3, "MB/s": v / 1e6}.get(unit, v)


def fmt(v):
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def tool_version(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // (1024 * 1024)
    os_name = "?"
    if os.path.exists("/etc/os-release"):
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    return f"{os_name}, Linux {platform.release()}, {os.cpu_count()} CPUs ({cpu}), {mem} GiB"


def report(ctx, results, elapsed):
    ldd = run(["ldd", str(ctx.bin_dir / "distctl")], check=False, stdout=subprocess.PIPE)
    ldd_out = ldd.stdout.decode() + ldd.stderr.decode()
    linkage = ("fully static" if "not a dynamic" in ldd_out else
               "gRPC linked dynamically" if "libgrpc" in ldd_out else "gRPC linked statically")
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `bench/bench.py` (run by `bench/run.sh`) on {datetime.date.today()} ({ctx.round_count} rounds, "
        f"interleaved; {elapsed / 60:.1f} minutes). What each workload is and how to read the "
        "figures: [README.md](README.md).",
        "",
        f"- Machine: {machine()}",
        f"- distd: {tool_version([str(ctx.bin_dir / 'distd'), '--version'])}, "
        f"distctl: {linkage}",
        f"- {tool_version(['ninja', '--version'])} (ninja), "
        f"{tool_version(['make', '--version'])}, {tool_version(['xargs', '--version'])}, "
        f"{tool_version(['parallel', '--version'])}, task-spooler "
        f"{tool_version(['tsp', '-V'])}",
        "",
        "## Targets",
        "",
        "| workload | target | measured | met |",
        "| --- | --- | --- | --- |",
    ]
    for wid, name, res in results:
        for text, ratio, met in res.checks():
            lines.append(f"| {wid} {name} | {text} | {ratio:.2f} | {'yes' if met else '**no**'} |")
    for wid, name, res in results:
        lines += ["", f"## {wid} {name}", "", res.what + ".", ""]
        unit = res.unit
        ratio_head = " ratio to the best |" if res.comparable else ""
        lines += [f"| | median {unit} | min - max |{ratio_head}",
                  "| --- | --- | --- |" + (" --- |" if res.comparable else "")]
        medians = {k: statistics.median(v) for k, v in res.series.items()}
        best = (max if res.higher_is_better else min)(medians.values())
        for k, v in res.series.items():
            m = medians[k]
            spread = f"{fmt(scale(unit, min(v)))} - {fmt(scale(unit, max(v)))}"
            row = f"| {k} | {fmt(scale(unit, m))} | {spread} |"
            if res.comparable:
                row += f" {m / best if best else float('nan'):.2f} |"
            lines.append(row)
        if res.note:
            lines += ["", res.note]
    # Linked, not copied: the notes are written by hand for one recorded run, and a copy in
    # every report would put them next to figures they were not written for.
    lines += ["", "## Reading the results", "",
              "What changed to reach these figures, why the missed targets are missed, and the "
              "profiles behind that: [RESULTS.notes.md](RESULTS.notes.md), written by hand for "
              "the run it names."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", type=pathlib.Path, required=True,
                        help="where distd and distctl are")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=pathlib.Path, help="the report (default: stdout)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--only", help="comma-separated workloads, e.g. W1,W3")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    only = set(args.only.upper().split(",")) if args.only else None
    os.environ.pop("DISTD_BUILD", None)  # every distctl here names its build, or means default
    for tool in ("ninja", "make", "xargs", "parallel", "tsp", "cmake", "flock"):
        if not shutil.which(tool):
            print(f"bench.py: {tool} is not installed (bench/run.sh installs the peers)",
                  file=sys.stderr)
            return 2
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="distd-bench-") as tmp:
        work = pathlib.Path(tmp)
        ctx = Context(args, work)
        ctx.daemon = ctx.bare = ctx.tsp = None
        try:
            ctx.daemon = Daemon(ctx.bin_dir, work, jobs=2)
            ctx.bare = Daemon(ctx.bin_dir, work, jobs=2, journal=False)
            ctx.tsp = TaskSpooler(work, slots=2)
            for wid, name, fn in WORKLOADS:
                if only and wid not in only:
                    continue
                print(f"== {wid} {name}", file=sys.stderr, flush=True)
                res = fn(ctx)
                for text, ratio, met in res.checks():
                    print(f"   {text}: {ratio:.2f} {'met' if met else 'NOT MET'}",
                          file=sys.stderr, flush=True)
                results.append((wid, name, res))
        except BenchError as e:
            print(f"bench.py: {e}", file=sys.stderr)
            return 1
        finally:
            if ctx.tsp:
                ctx.tsp.kill()
            for daemon in (ctx.daemon, ctx.bare):
                if daemon:
                    daemon.stop()
        text = report(ctx, results, time.perf_counter() - started)
    if args.out:
        args.out.write_text(text)
        print(f"bench.py: wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
