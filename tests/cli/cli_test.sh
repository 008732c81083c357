#!/usr/bin/env bash
# Black-box tests of distd and distctl: the real binaries, a daemon per test on a socket in a
# temporary directory. Usage: cli_test.sh BIN_DIR TEST_NAME   (ctest runs each test by name)
#
# Processes started by jobs use unusual sleep lengths (sleep 977.1, ...) so that a survivor
# can be found with pgrep without touching anything else on the machine.
set -uo pipefail

BIN=$1
NAME=$2
T=$(mktemp -d /tmp/distd-cli-XXXXXX)
SOCK=$T/d.sock
export DISTD_ADDR=unix:$SOCK
unset DISTD_BUILD DISTD_SOCKET
# Each test's daemons keep their journal in its own directory (the default is the user's).
export XDG_STATE_HOME=$T/state
DPID=

DISTCTL=$BIN/distctl
distctl() { "$DISTCTL" "$@"; }  # for background jobs and timeout, use "$DISTCTL" itself

fail() {
  echo "FAIL [$NAME]: $*" >&2
  local log
  for log in "$T/distd.log" "$T"/*/distd.log; do
    [ -f "$log" ] || continue
    echo "--- ${log#"$T"/} (last 30 lines)" >&2
    tail -n 30 "$log" >&2
  done
  exit 1
}

LAUNCH=()  # what distd is started through, if anything
start_daemon() {  # start_daemon [JOBS [FLAG...]]
  "${LAUNCH[@]}" "$BIN/distd" --listen "unix:$SOCK" --jobs "${1:-2}" --grace 2s --log-level debug "${@:2}" \
    >>"$T/distd.log" 2>&1 &
  DPID=$!
  for _ in $(seq 1 200); do
    if [ -S "$SOCK" ] && distctl status >/dev/null 2>&1; then return 0; fi
    kill -0 "$DPID" 2>/dev/null || fail "distd exited at start"
    sleep 0.05
  done
  fail "distd did not start"
}

stop_daemon() {
  if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
    kill -CONT "$DPID"  # a test may have stopped it
    kill -TERM "$DPID"
    wait "$DPID" 2>/dev/null
    # One this shell did not start (auto_start's) is not its child: wait for it to go.
    for _ in $(seq 1 200); do
      kill -0 "$DPID" 2>/dev/null || break
      sleep 0.05
    done
  fi
  DPID=
}

cleanup() {
  [ -z "${FILLER:-}" ] || kill "$FILLER" 2>/dev/null
  stop_daemon  # which ends every job it still runs
  stop_slurm
  # A cgroup a test made, with whatever distd left in it (a failing test's).
  [ -z "${CG:-}" ] || rmdir "$CG"/*/* "$CG"/* "$CG" 2>/dev/null
  rm -rf "$T" "$T.gone"
}
trap cleanup EXIT

# expect_code WANT CMD...: runs CMD with stdout/stderr to $T/out, $T/err.
expect_code() {
  local want=$1
  shift
  "$@" >"$T/out" 2>"$T/err"
  local got=$?
  [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want; stderr: $(head -c 500 "$T/err")"
}

expect_grep() {  # expect_grep PATTERN FILE
  grep -q -- "$1" "$2" || fail "expected '$1' in $2: $(head -c 500 "$2")"
}

no_survivor() {  # no_survivor PATTERN: no process matches, allowing the kernel a moment
  for _ in $(seq 1 100); do
    pgrep -f "^$1" >/dev/null || return 0
    sleep 0.05
  done
  fail "a job process survived: $(pgrep -af "^$1")"
}

wait_until() {  # wait_until SECONDS CMD...: polls CMD until it succeeds
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}

signals_blocked() {  # signals_blocked PID: distctl runs as PID and has blocked SIGINT, SIGTERM
  # Before exec the forked shell may block signals for a moment too: check it is distctl.
  [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$(readlink -f "$DISTCTL")" ] || return 1
  local mask
  mask=$(awk '/^SigBlk:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$mask" ] && (((0x$mask & 0x4002) == 0x4002))
}

still_serving() {
  expect_code 0 distctl status
}

# A throwaway second user for the tests of trust between users; such a test is skipped
# (exit 77) where it cannot make one.
other_user() {
  [ "$(id -u)" -eq 0 ] || { echo "SKIP [$NAME]: needs root to make a second user"; exit 77; }
  OTHER=distd-test-other
  for _ in $(seq 1 50); do  # tests run in parallel: useradd may find /etc/passwd locked
    id -u "$OTHER" >/dev/null 2>&1 && break
    useradd --system --no-create-home --shell /usr/sbin/nologin "$OTHER" 2>/dev/null || sleep 0.1
  done
  OTHER_UID=$(id -u "$OTHER") || fail "cannot make the user $OTHER"
  # A world-writable sticky directory, as /tmp is, that both users can reach.
  chmod 0755 "$T"
  PUB=$T/pub
  mkdir -m 1777 "$PUB"
}
as_other() { runuser -u "$OTHER" -- "$@"; }

# --- the tests ---------------------------------------------------------------------------

test_exit_codes() {
  start_daemon
  expect_code 0 distctl run -- true
  expect_code 3 distctl run -- sh -c 'exit 3'
  expect_code 143 distctl run -- sh -c 'kill -TERM $$'
  expect_code 127 distctl run -- distd-no-such-program
  expect_grep "not found" "$T/err"
  expect_code 126 distctl run -- /etc/passwd
  expect_code 126 distctl run -C "$T/missing" -- true
  expect_grep "$T/missing" "$T/err"
  expect_code 124 distctl run --timeout 200ms -- sleep 977.1
  no_survivor "sleep 977.1"
}

test_streams_apart() {
  start_daemon
  expect_code 0 distctl run -- sh -c 'echo to-out; echo to-err >&2'
  [ "$(cat "$T/out")" = "to-out" ] || fail "stdout: $(cat "$T/out")"
  [ "$(cat "$T/err")" = "to-err" ] || fail "stderr: $(cat "$T/err")"
}

# A foreground job's output written by distd straight into distctl's stdout pipe: whole, in
# order with what follows distctl, and the pipe's reader sees EOF when distctl exits.
test_output_into_a_pipe() {
  start_daemon
  local got
  got=$({ timeout 60 "$DISTCTL" run -- sh -c 'echo one; echo err >&2; echo two'; echo after; } \
    2>"$T/err" | cat)
  [ "$got" = "one
two
after" ] || fail "stdout through a pipe: $got"
  [ "$(cat "$T/err")" = err ] || fail "stderr: $(cat "$T/err")"
  # distd wrote it there itself (stderr, a file here, came through distctl).
  expect_grep "output goes to /proc/[0-9]*/fd/1 directly" "$T/distd.log"
  got=$(timeout 60 "$DISTCTL" run -- sh -c 'echo one; echo two >&2' 2>&1 | sort | tr '\n' ' ')
  [ "$got" = "one two " ] || fail "2>&1 through a pipe: $got"
  got=$(timeout 60 "$DISTCTL" run -- head -c 50000000 /dev/zero | wc -c)
  [ "$got" -eq 50000000 ] || fail "50 MB through a pipe came as $got bytes"
  # What went to the pipe is still kept for logs (job ids count up: the first job is id-3).
  local id
  id=$(distctl run --bg -- true)
  expect_code 0 distctl logs "$((id - 3))"
  [ "$(cat "$T/out")" = "one
two" ] || fail "logs of the piped job: $(cat "$T/out")"
}

# The reader of distctl's stdout goes away: the job gets SIGPIPE, as in a shell pipe (the
# shell around it lives on to say so), and distctl exits 141 when the job dies of it.
test_reader_goes_away() {
  start_daemon
  local first codes
  first=$(timeout 60 "$DISTCTL" run -- sh -c 'yes distd-pipe-test; echo "yes: $?" >&2' \
    2>"$T/err" | head -n 1; echo "${PIPESTATUS[*]}" >"$T/codes")
  codes=$(cat "$T/codes")
  [ "$first" = distd-pipe-test ] || fail "first line: $first"
  [ "$codes" = "0 0" ] || fail "exit codes of distctl and head: $codes"
  [ "$(cat "$T/err")" = "yes: 141" ] || fail "the job's stderr: $(cat "$T/err")"
  first=$(timeout 60 "$DISTCTL" run -- yes distd-pipe-test | head -n 1; echo "${PIPESTATUS[*]}" >"$T/codes")
  [ "$(cat "$T/codes")" = "141 0" ] || fail "exit codes of distctl and head: $(cat "$T/codes")"
  no_survivor "yes distd-pipe-test"
}

test_cwd_and_env() {
  start_daemon
  mkdir -p "$T/work/sub"
  (cd "$T/work" && FOO=client expect_code 0 distctl run -C sub -e BAR=extra -- sh -c 'pwd; echo $FOO $BAR')
  [ "$(cat "$T/out")" = "$T/work/sub
client extra" ] || fail "cwd/env: $(cat "$T/out")"
}

test_umask_and_limits() {
  start_daemon
  cd "$T" || fail "cd $T"
  umask 022
  # The job runs as it would in the client's shell: its umask, its soft limits.
  expect_code 0 bash -c 'umask 077; ulimit -S -n 100; ulimit -S -c 0; exec "$0" run -- \
    sh -c "umask; ulimit -n; ulimit -c; touch made; stat -c %a made"' "$DISTCTL"
  [ "$(cat "$T/out")" = "$(printf '0077\n100\n0\n600')" ] || fail "in the job: $(cat "$T/out")"
  # In the background too, and a job of the next client gets that client's.
  expect_code 0 bash -c 'umask 027; ulimit -S -n 200; exec "$0" run --bg -- \
    sh -c "umask; ulimit -n"' "$DISTCTL"
  local id
  id=$(cat "$T/out")
  expect_code 0 distctl wait
  expect_code 0 distctl logs "$id"
  [ "$(cat "$T/out")" = "$(printf '0027\n200')" ] || fail "in the background job: $(cat "$T/out")"
  expect_code 0 distctl run -- sh -c umask
  [ "$(cat "$T/out")" = 0022 ] || fail "the next job's umask: $(cat "$T/out")"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

test_output_budget() {
  start_daemon 2 --output-memory 16
  local before
  before=$(rss_kib "$DPID")
  # 150 jobs that print 1 MiB to each stream: 512 KiB of each is kept, 150 MiB in all
  # without the budget.
  for _ in $(seq 1 150); do
    echo "sh -c 'head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2'"
  done >"$T/chatty"
  expect_code 0 distctl --build chatty run --bg -f "$T/chatty"
  local first last
  first=$(head -n 1 "$T/out")
  last=$(tail -n 1 "$T/out")
  expect_code 0 distctl --build chatty wait
  # The first job's output left memory, but the journal kept it whole on disk.
  expect_code 0 distctl logs "$first"
  [ "$(wc -c <"$T/out")" -eq 1048576 ] || fail "the first job's stdout is not all on disk"
  [ "$(wc -c <"$T/err")" -eq 1048576 ] || fail "the first job's stderr is not all on disk"
  expect_code 0 distctl logs "$last"
  [ "$(wc -c <"$T/out")" -gt 500000 ] || fail "the last job's output was not kept"
  # Under AddressSanitizer freed memory waits in its quarantine: RSS tells nothing there.
  if ! grep -q libasan "/proc/$DPID/maps"; then
    local after
    after=$(rss_kib "$DPID")
    [ $((after - before)) -lt $((64 * 1024)) ] ||
      fail "distd grew from $before KiB to $after KiB under a 16 MiB output budget"
  fi
  # Closing the build frees what memory kept of it; the disk still has it.
  expect_code 0 distctl build close chatty
  expect_code 0 distctl logs "$last"
  [ "$(wc -c <"$T/out")" -eq 1048576 ] || fail "the last job's stdout is not on disk"
}

test_batch_all_or_nothing() {
  start_daemon
  printf 'echo one\n# a comment\n\nsh -c "exit 0"\n' >"$T/good"
  expect_code 0 distctl run --bg -f "$T/good"
  [ "$(wc -l <"$T/out")" -eq 2 ] || fail "expected two ids: $(cat "$T/out")"
  expect_code 0 distctl wait
  printf 'echo one\necho "unterminated\n' >"$T/bad"
  expect_code 2 distctl --build other run --bg -f "$T/bad"
  expect_grep "line 2" "$T/err"
  # Nothing of the bad batch was queued: the build does not even exist.
  expect_code 0 distctl build list
  if grep -q other "$T/out"; then fail "a malformed batch queued jobs: $(cat "$T/out")"; fi
  printf 'true\n' | expect_code 0 distctl run --bg -f -
  # A command that distd refuses is named by its line in the file, not by its number.
  {
    echo 'echo fine'
    printf '# a comment\n\n'
    printf 'echo %s\n' "$(head -c 200000 /dev/zero | tr '\0' x)"
  } >"$T/long"
  expect_code 2 distctl --build other run --bg -f "$T/long"
  expect_grep "^distctl: $T/long: line 4: argument 1 " "$T/err"
  if grep -q "command 2" "$T/err"; then fail "the refusal names the command: $(cat "$T/err")"; fi
}

test_barrier() {
  start_daemon
  for i in 1 2 3; do expect_code 0 distctl run --bg -- sh -c "sleep 0.2; touch $T/done$i"; done
  expect_code 0 distctl wait
  for i in 1 2 3; do [ -f "$T/done$i" ] || fail "wait returned before job $i finished"; done
  expect_code 0 distctl run --bg -- sh -c 'echo compiling x.c; echo "x.c:1: error" >&2; exit 1'
  expect_code 1 distctl wait
  expect_grep "FAILED: sh -c" "$T/err"
  expect_grep "x.c:1: error" "$T/err"
  expect_grep "compiling x.c" "$T/err"
  # The failed build refuses new jobs until it is closed.
  expect_code 125 distctl run --bg -- true
  expect_grep "exit code 1" "$T/err"
  expect_code 0 distctl build close default
  expect_code 0 distctl run --bg -- true
  expect_code 0 distctl wait
}

test_groups() {
  start_daemon
  expect_code 0 distctl run --bg --group slow -- sleep 977.2
  expect_code 0 distctl run --bg --group fast -- true
  expect_code 0 timeout 10 "$DISTCTL" wait --group fast
  expect_code 0 distctl abort
  no_survivor "sleep 977.2"
}

test_fail_fast_with_huge_queue() {
  start_daemon 2
  {
    echo "sh -c 'sleep 0.5; echo boom >&2; exit 7'"
    echo "sleep 977.3"
    for _ in $(seq 1 20000); do echo "sleep 977.4"; done
  } >"$T/queue"
  expect_code 0 distctl run --bg -f "$T/queue"
  local start=$SECONDS
  expect_code 1 timeout 60 "$DISTCTL" wait
  [ $((SECONDS - start)) -lt 15 ] || fail "wait took $((SECONDS - start)) s"
  expect_grep "FAILED: sh -c" "$T/err"
  expect_grep "boom" "$T/err"
  # wait returned only once nothing of the build ran: no survivor, no allowance needed.
  pgrep -f "^sleep 977.3" >/dev/null && fail "sleep 977.3 survived"
  pgrep -f "^sleep 977.4" >/dev/null && fail "a queued job was started"
  expect_code 125 distctl run -- true
  expect_grep "exit code 7" "$T/err"
  expect_code 0 distctl status --json
  expect_grep '"cancelled":"20001"' "$T/out"
  expect_code 0 distctl build close default
  expect_code 0 distctl run -- true
}

test_concurrent_aborts() {
  start_daemon
  expect_code 0 distctl run --bg -- sleep 977.5
  expect_code 0 distctl run --bg -- sh -c 'trap "" TERM; sleep 977.6'
  "$DISTCTL" wait >"$T/wait.out" 2>"$T/wait.err" &
  local waiter=$!
  wait_until 10 grep -q "wait on build default" "$T/distd.log" || fail "the wait never arrived"
  local pids=()
  for i in $(seq 1 8); do
    ("$DISTCTL" abort --reason "client $i"; echo $? >"$T/abort$i") &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  for i in $(seq 1 8); do
    [ "$(cat "$T/abort$i")" = 0 ] || fail "abort $i exited $(cat "$T/abort$i")"
  done
  # Every abort has returned: nothing of the build runs any more, SIGTERM-proof job included.
  pgrep -f "^sleep 977.5" >/dev/null && fail "sleep 977.5 survived the aborts"
  pgrep -f "^sleep 977.6" >/dev/null && fail "sleep 977.6 (ignores SIGTERM) survived the aborts"
  wait "$waiter"
  [ $? -eq 1 ] || fail "the pending wait did not report the failure"
  grep -q "aborted: client" "$T/wait.err" || fail "wait: $(cat "$T/wait.err")"
}

test_ctrl_c_on_run() {
  start_daemon
  # With job control on, a background command keeps SIGINT (a plain script ignores it there).
  set -m
  "$DISTCTL" run -- sleep 977.7 &
  local client=$!
  set +m
  wait_until 10 pgrep -f "^sleep 977.7" >/dev/null || fail "the job did not start"
  kill -INT "$client"
  wait "$client"
  local code=$?
  [ "$code" -eq 130 ] || fail "distctl exited $code after SIGINT, expected 130"
  pgrep -f "^sleep 977.7" >/dev/null && fail "the job survived the client's exit"
  # So does a distctl killed outright, which has no chance to say so: distd sees the
  # connection close.
  "$DISTCTL" run -- sleep 978.2 &
  client=$!
  wait_until 10 pgrep -f "^sleep 978.2" >/dev/null || fail "the second job did not start"
  kill -KILL "$client"
  wait "$client"
  no_survivor "sleep 978.2"
  # A cancelled foreground job does not fail its build.
  expect_code 0 distctl run -- true
}

test_sigterm_on_waiting_client() {
  start_daemon
  expect_code 0 distctl run --bg -- sleep 977.8
  "$DISTCTL" wait &
  local client=$!
  wait_until 10 signals_blocked "$client" || fail "distctl never blocked SIGTERM"
  kill -TERM "$client"
  wait "$client"
  local code=$?
  [ "$code" -eq 143 ] || fail "distctl wait exited $code after SIGTERM, expected 143"
  pgrep -f "^sleep 977.8" >/dev/null && fail "the build was not aborted"
  expect_code 125 distctl run --bg -- true
}

test_sigterm_on_daemon() {
  start_daemon
  expect_code 0 distctl run --bg -- sleep 977.9
  expect_code 0 distctl run --bg -- sh -c 'trap "" TERM; sleep 978.1'
  "$DISTCTL" wait >"$T/wait.out" 2>"$T/wait.err" &
  local waiter=$!
  wait_until 10 pgrep -f "^sleep 978.1" >/dev/null || fail "jobs did not start"
  wait_until 10 grep -q "wait on build default" "$T/distd.log" || fail "the wait never arrived"
  kill -TERM "$DPID"
  wait "$DPID"
  local code=$?
  DPID=
  [ "$code" -eq 0 ] || fail "distd exited $code on SIGTERM"
  pgrep -f "^sleep 977.9" >/dev/null && fail "a job survived distd"
  pgrep -f "^sleep 978.1" >/dev/null && fail "a SIGTERM-proof job survived distd"
  wait "$waiter"
  [ $? -eq 1 ] || fail "the waiting client did not get the failure: $(cat "$T/wait.err")"
  [ -S "$SOCK" ] && fail "the socket was left behind"
  return 0
}

test_restart_after_kill() {
  start_daemon
  expect_code 0 distctl --build done run --bg -- sh -c 'echo kept-out; echo kept-err >&2'
  local printed
  printed=$(cat "$T/out")
  expect_code 0 distctl --build done wait
  # A running job with a process that left its group: found by its marks after the restart.
  expect_code 0 distctl --build hit run --bg -- \
    sh -c 'echo before-kill; sleep 979.1 & setsid sleep 979.4 & wait'
  local lost
  lost=$(cat "$T/out")
  expect_code 0 distctl --build hit run --bg -- sleep 979.2
  expect_code 0 distctl --build hit run --bg -- sleep 979.3  # queued behind the pool of 2
  local last
  last=$(cat "$T/out")
  wait_until 10 pgrep -f "^sleep 979.2" >/dev/null || fail "jobs did not start"
  pgrep -f "^sleep 979.1" >/dev/null || fail "the first job's sleep did not start"
  wait_until 10 pgrep -f "^sleep 979.4" >/dev/null || fail "the escapee did not start"
  wait_until 10 grep -q before-kill "$T/state/distd/out/$lost.stdout" ||
    fail "the running job's output did not reach the state directory"
  kill -KILL "$DPID"
  wait "$DPID" 2>/dev/null
  DPID=
  pgrep -f "^sleep 979.1" >/dev/null || fail "nothing was left to kill: the test proves nothing"
  start_daemon
  # What was left of the running jobs' groups is gone, and nothing else.
  no_survivor "sleep 979.1"
  no_survivor "sleep 979.2"
  no_survivor "sleep 979.4"
  expect_grep "killed 2 process.* (group" "$T/distd.log"  # sh and its sleep
  expect_grep "killed 1 process.* (group" "$T/distd.log"
  expect_grep "left of job $lost of the previous distd, found by the DISTD_INSTANCE" "$T/distd.log"
  expect_grep "2 running (now lost), 1 queued (now cancelled); failed: hit" "$T/distd.log"
  # The build failed, and says why; the idle one is as it was.
  expect_code 1 distctl --build hit wait
  expect_grep "distd restarted while jobs were running" "$T/err"
  expect_code 0 distctl --build done wait
  expect_code 0 distctl status
  expect_grep "hit .*dead" "$T/out"
  expect_grep "done .*running" "$T/out"
  # What jobs printed is there after the restart: of a finished job, and of a lost one up to
  # its end; and still after its build is closed.
  expect_code 0 distctl logs "$printed"
  expect_grep "kept-out" "$T/out"
  expect_grep "kept-err" "$T/err"
  expect_code 0 distctl logs "$lost"
  expect_grep "before-kill" "$T/out"
  expect_grep "lost" "$T/err"
  expect_code 0 distctl build close done
  expect_code 0 distctl logs "$printed"
  expect_grep "kept-out" "$T/out"
  # Job ids go on after the journal's last, so an id names one job.
  expect_code 0 distctl --build fresh run --bg -- true
  [ "$(cat "$T/out")" -gt "$last" ] || fail "job id $(cat "$T/out") after $last"
  # The failed build can be closed and its name used afresh.
  expect_code 0 distctl build close hit
  expect_code 0 distctl --build hit run -- true
}

test_wait_unused_and_closed() {
  start_daemon
  # A script that waits unconditionally does not fail for a build that had nothing.
  expect_code 0 distctl --build never wait
  expect_grep "nothing to wait for" "$T/err"
  expect_code 0 distctl --build never wait --group g
  # A closed build is answered as the journal last saw it, also after a restart.
  expect_code 0 distctl --build broken run --bg -- false
  expect_code 1 distctl --build broken wait
  expect_code 0 distctl build close broken
  expect_code 1 distctl --build broken wait
  expect_grep "exit code 1" "$T/err"
  expect_code 0 distctl --build fine run -- true
  expect_code 0 distctl build close fine
  expect_code 0 distctl --build fine wait
  [ -s "$T/err" ] && fail "a closed build that succeeded: $(cat "$T/err")"
  stop_daemon
  start_daemon
  expect_code 1 distctl --build broken wait
  expect_grep "exit code 1" "$T/err"
  # Status shows them, most recent first, with how they ended.
  expect_code 0 distctl status
  expect_grep "recently closed" "$T/out"
  expect_grep " fine .* succeeded " "$T/out"
  expect_grep " broken .* failed .*exit code 1" "$T/out"
  [ "$(grep -n ' fine ' "$T/out" | cut -d: -f1)" -lt "$(grep -n ' broken ' "$T/out" | cut -d: -f1)" ] ||
    fail "the history is not most recent first: $(cat "$T/out")"
  expect_code 0 distctl status --history 1 --json
  python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
h = s["history"]
assert len(h) == 1 and h[0]["name"] == "fine" and int(h[0]["closed_at_ms"]) > 0, h
' "$T/out" || fail "status --json history: $(cat "$T/out")"
  expect_code 2 distctl status --history 101
  # Without a journal nothing is remembered.
  stop_daemon
  start_daemon 2 --no-journal
  expect_code 0 distctl --build broken wait
  expect_grep "nothing to wait for" "$T/err"
}

test_idle_abort() {
  start_daemon 2 --idle-abort 1s
  # Nobody waits for it: aborted, and every process of it gone.
  expect_code 0 distctl --build left run --bg -- sleep 982.1
  # Its client is attached all along (a foreground run, from its submission on): it runs to
  # its end.
  "$DISTCTL" --build kept run -- sleep 2.5 >"$T/kept.out" 2>"$T/kept.err" &
  local waiter=$!
  wait_until 10 grep -q "build left aborted: abandoned" "$T/distd.log" ||
    fail "the abandoned build was not aborted"
  no_survivor "sleep 982.1"
  expect_code 1 distctl --build left wait
  expect_grep "abandoned: no client attended it for 1s" "$T/err"
  wait "$waiter" || fail "the attended job did not succeed: $(cat "$T/kept.err")"
  # An idle build (nothing queued or running) is left alone however long.
  expect_code 0 distctl --build kept status
}

test_bad_state_dir() {
  # Not a journal: a clear error at start that names the file.
  mkdir -m 700 "$T/bad"
  head -c 4096 /dev/urandom >"$T/bad/journal.db"
  expect_code 1 "$BIN/distd" --listen "unix:$SOCK" --state-dir "$T/bad"
  expect_grep "$T/bad/journal.db" "$T/err"
  expect_grep "not a database" "$T/err"
  # Open to others: refused as any private directory of distd's.
  mkdir -m 755 "$T/open"
  expect_code 1 "$BIN/distd" --listen "unix:$SOCK" --state-dir "$T/open"
  expect_grep "must be 0700" "$T/err"
  # Two daemons, one state directory: the second is refused, the first serves on.
  start_daemon 2 --state-dir "$T/shared"
  expect_code 1 "$BIN/distd" --listen "unix:$T/other.sock" --state-dir "$T/shared"
  expect_grep "another distd uses the state directory $T/shared" "$T/err"
  still_serving
}

test_fairness() {
  start_daemon 1
  for i in $(seq 1 40); do echo "sleep 0.25"; done >"$T/queue"
  expect_code 0 distctl --build big run --bg -f "$T/queue"
  local start
  start=$(date +%s%N)
  expect_code 0 distctl --build small run -- true
  local ms=$((($(date +%s%N) - start) / 1000000))
  # Behind the big build's queue it would wait 10 s; fairly, about one job (250 ms).
  [ "$ms" -lt 3000 ] || fail "the small build's job waited $ms ms"
  expect_code 0 distctl --build big abort
}

test_auto_start() {
  unset DISTD_ADDR
  export DISTD_SOCKET=$T/auto/d.sock
  # Two clients at once: exactly one daemon serves both.
  "$DISTCTL" run -- true >"$T/a1" 2>&1 &
  local c1=$!
  "$DISTCTL" run -- true >"$T/a2" 2>&1 &
  local c2=$!
  local ok1=0 ok2=0
  wait "$c1" || ok1=$?
  wait "$c2" || ok2=$?
  # The daemon that holds the lock is the one the cleanup stops, whatever failed.
  DPID=$(cat "$DISTD_SOCKET.lock" 2>/dev/null)
  [ "$ok1" -eq 0 ] || fail "first client: $(cat "$T/a1")"
  [ "$ok2" -eq 0 ] || fail "second client: $(cat "$T/a2")"
  [ -S "$DISTD_SOCKET" ] || fail "no socket at $DISTD_SOCKET"
  [ "$(stat -c %a "$T/auto")" = 700 ] || fail "socket directory mode $(stat -c %a "$T/auto")"
  [ "$(stat -c %a "$DISTD_SOCKET")" = 600 ] || fail "socket mode $(stat -c %a "$DISTD_SOCKET")"
  # A daemon that lost the race for the lock exits on its own, soon (under a sanitizer its
  # exit takes a moment, and its leak check shows as a second process of the same name).
  local daemons
  for _ in $(seq 1 100); do
    daemons=$(pgrep -fc "distd --listen unix:$DISTD_SOCKET")
    [ "$daemons" -gt 1 ] || break
    sleep 0.1
  done
  [ "$daemons" -eq 1 ] || fail "$daemons daemons serve $DISTD_SOCKET"
  [ "$(pgrep -f "distd --listen unix:$DISTD_SOCKET")" = "$DPID" ] ||
    fail "the daemon serving $DISTD_SOCKET is not the one holding its lock ($DPID)"
}

test_escapees_after_abort() {
  start_daemon 3
  # Out of the job's group and session (setsid), and double-forked out of its tree: an abort
  # still ends both, and what a job that ended by itself left (a cache's server) goes on.
  expect_code 0 distctl run --bg -- sh -c 'setsid sleep 978.31 & sleep 978.32'
  expect_code 0 distctl run --bg -- sh -c '(setsid sh -c "sleep 978.33 & wait" &) ; sleep 978.34'
  # (It ends once the server is out of its group, which the group kill at its end would take.)
  expect_code 0 distctl --build keep run -- sh -c "setsid sh -c 'touch $T/ready; exec sleep 978.35' \
    >/dev/null 2>&1 & while [ ! -e $T/ready ]; do sleep 0.01; done"
  for pattern in "sleep 978.31" "sleep 978.32" "sleep 978.33" "sleep 978.34" "sleep 978.35"; do
    wait_until 10 pgrep -f "^$pattern" >/dev/null || fail "$pattern did not start"
  done
  expect_code 0 distctl abort
  for pattern in "sleep 978.31" "sleep 978.32" "sleep 978.33" "sleep 978.34"; do
    no_survivor "$pattern"
  done
  local kept
  kept=$(pgrep -f "^sleep 978.35") || fail "the server a finished job left was killed"
  # It is distd's child now, and reaped by distd when it ends: no zombie is left.
  [ "$(ps -o ppid= -p "$kept" | tr -d ' ')" = "$DPID" ] || fail "the orphan is not distd's child"
  kill "$kept"
  # Gone altogether, not a zombie: distd reaped it.
  wait_until 10 test ! -e "/proc/$kept" || fail "distd did not reap the orphan $kept"
  still_serving
}

test_escapees_in_cgroups() {
  # distd in a cgroup of its own, as a unit with Delegate=yes has it: every job gets one.
  local mount
  mount=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' \
    /proc/self/mountinfo | head -n1)
  [ -n "$mount" ] || { echo "no cgroup v2 hierarchy is mounted: skipped"; exit 77; }
  CG=$mount/distd-cli-test.$$
  mkdir "$CG" 2>/dev/null || { echo "cannot make a cgroup in $mount: skipped"; exit 77; }
  # Marked as systemd marks a unit's cgroup with Delegate=yes.
  python3 -c 'import os, sys; os.setxattr(sys.argv[1], "trusted.delegate", b"1")' "$CG" ||
    { echo "cannot mark $CG delegated: skipped"; exit 77; }
  # shellcheck disable=SC2016  # $$ and $0 are the launcher shell's
  LAUNCH=(sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG")
  start_daemon 2
  expect_grep "each job runs in a cgroup of its own in $CG/distd-" "$T/distd.log"
  # Out of its group, and with an environment that no longer says whose it is: only its
  # cgroup knows.
  expect_code 0 distctl run --bg -- sh -c 'env -i setsid sleep 983.31 & sleep 983.32'
  wait_until 10 pgrep -f "^sleep 983.31" >/dev/null || fail "the escapee did not start"
  expect_code 0 distctl abort
  no_survivor "sleep 983.31"
  no_survivor "sleep 983.32"
  still_serving
  # distd killed with such a job running: the next one kills what is left in its cgroup.
  expect_code 0 distctl --build hit run --bg -- sh -c 'env -i setsid sleep 983.33 & sleep 983.34'
  local job
  job=$(cat "$T/out")
  wait_until 10 pgrep -f "^sleep 983.33" >/dev/null || fail "the second escapee did not start"
  kill -KILL "$DPID"
  wait "$DPID" 2>/dev/null
  DPID=
  start_daemon 2
  expect_grep "left in the cgroup of job $job of the previous distd" "$T/distd.log"
  no_survivor "sleep 983.33"
  no_survivor "sleep 983.34"
  # distd removes what it made when it stops.
  stop_daemon
  rmdir "$CG" || fail "distd left cgroups behind: $(find "$CG" -mindepth 1 -type d)"
  CG=
}

test_second_daemon_refused() {
  start_daemon
  expect_code 1 "$BIN/distd" --listen "unix:$SOCK"
  expect_grep "already serving" "$T/err"
  still_serving
}

test_other_uid_refused() {
  command -v setpriv >/dev/null || fail "setpriv is missing (util-linux)"
  start_daemon
  # Through the file system: the socket is 0600 in a 0700 directory.
  expect_code 125 setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN/distctl" status
  # Even when the file modes are opened up, the daemon checks the caller's uid itself.
  chmod 0755 "$T"
  chmod 0666 "$SOCK"
  expect_code 125 setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN/distctl" run -- true
  expect_grep "uid 65534" "$T/err"
  still_serving
}

test_bad_input() {
  start_daemon
  expect_code 2 distctl run --
  expect_grep "empty command" "$T/err"
  # The same rule and words as distd's, checked before anything is sent: a batch names the line.
  expect_code 2 distctl --addr "unix:$T/nobody.sock" run -- ''
  expect_grep "empty program name" "$T/err"
  printf 'true\n"" x\n' >"$T/empty_program"
  expect_code 2 distctl run --bg -f "$T/empty_program"
  expect_grep "line 2: empty program name" "$T/err"
  expect_code 2 distctl run --timeout soon -- true
  expect_code 2 distctl run -e NOEQUALS -- true
  expect_code 2 distctl frobnicate
  expect_code 2 distctl run --no-such-flag -- true
  # Caller mistakes that distd finds are usage errors too.
  expect_code 2 distctl --build 'bad name' run -- true
  expect_grep "build name" "$T/err"
  expect_code 2 distctl run --timeout 9999h -- true
  expect_grep "timeout" "$T/err"
  expect_code 2 distctl abort --grace 11m
  expect_grep "grace" "$T/err"
  expect_code 2 env DISTD_BUILD= "$DISTCTL" run -- true
  expect_grep "DISTD_BUILD" "$T/err"
  expect_code 2 distctl --build '' run -- true
  expect_code 2 "$BIN/distd" --listen "unix:$T/other.sock" --grace inf
  expect_grep "grace" "$T/err"
  expect_code 2 "$BIN/distd" --listen "unix:$T/other.sock" --grace 11m
  # Arguments are limited by their bytes, as execve limits them, not by their number.
  expect_code 0 distctl run -- sh -c 'echo $#' sh $(seq 1 70000)
  [ "$(cat "$T/out")" = 70000 ] || fail "70,000 arguments: $(head -c 200 "$T/out")"
  { printf 'echo '; head -c 8388608 /dev/zero | tr '\0' x; echo; } >"$T/huge"
  expect_code 2 distctl run --bg -f "$T/huge"
  expect_grep "the limit is" "$T/err"
  expect_code 125 distctl logs 999999
  expect_code 125 distctl build close nope
  expect_code 0 distctl --help
  expect_code 0 distctl run --help
  still_serving
}

test_logs_and_status() {
  start_daemon
  expect_code 0 distctl run --bg -- sh -c 'echo hello; echo oops >&2'
  local id
  id=$(cat "$T/out")
  expect_code 0 distctl wait
  expect_code 0 distctl logs "$id"
  [ "$(cat "$T/out")" = hello ] || fail "logs stdout: $(cat "$T/out")"
  [ "$(cat "$T/err")" = oops ] || fail "logs stderr: $(cat "$T/err")"
  expect_code 0 distctl run --bg -- sh -c 'sleep 0.3; echo later'
  id=$(cat "$T/out")
  expect_code 0 distctl logs --follow "$id"
  [ "$(cat "$T/out")" = later ] || fail "logs --follow: $(cat "$T/out")"
  expect_code 0 distctl status
  expect_grep default "$T/out"
  expect_code 0 distctl status --json
  expect_code 0 distctl build list
  expect_grep default "$T/out"
  # Output that retention removed is said to be gone, not passed off as silence.
  stop_daemon
  touch -d '2 hours ago' "$T/state/distd/out/$id.stdout"
  start_daemon 2 --output-keep 1h
  wait_until 10 grep -q "removed .* bytes of old jobs' output" "$T/distd.log" ||
    fail "the old output was not removed"
  expect_code 0 distctl logs "$id"
  expect_grep "the 6 bytes kept of this job's stdout were removed" "$T/out"
}

test_planted_directory() {
  other_user
  unset DISTD_ADDR
  # A directory made first by the other user, where this user's socket would go.
  as_other mkdir -m 0700 "$PUB/distd-a"
  export DISTD_SOCKET=$PUB/distd-a/d.sock
  expect_code 125 distctl run -- true
  expect_grep "$PUB/distd-a" "$T/err"
  expect_grep "belongs to uid $OTHER_UID" "$T/err"
  expect_code 1 "$BIN/distd" --listen "unix:$DISTD_SOCKET"
  expect_grep "belongs to uid $OTHER_UID" "$T/err"
  # One of ours, but open to others: refused, not fixed behind the user's back.
  mkdir -m 0755 "$PUB/distd-b"
  export DISTD_SOCKET=$PUB/distd-b/d.sock
  expect_code 125 distctl run -- true
  expect_grep "mode 0755" "$T/err"
  [ "$(stat -c %a "$PUB/distd-b")" = 755 ] || fail "the mode was changed"
  # A link planted by the other user, to a directory of theirs with a link in it where
  # distd.log would go: nothing is made there, nothing is written through the link.
  as_other mkdir -m 0700 "$PUB/theirs"
  as_other ln -s "$PUB/victim" "$PUB/theirs/distd.log"
  as_other ln -s "$PUB/theirs" "$PUB/distd-c"
  export DISTD_SOCKET=$PUB/distd-c/d.sock
  expect_code 125 distctl run -- true
  expect_grep "symbolic link" "$T/err"
  expect_code 1 "$BIN/distd" --listen "unix:$DISTD_SOCKET"
  expect_grep "symbolic link" "$T/err"
  [ ! -e "$PUB/victim" ] || fail "distctl wrote through a planted link"
  [ -z "$(find "$PUB/theirs" -user 0)" ] || fail "something of ours was made in their directory"
  # Even a link of our own is refused as the directory itself, but may lead to it: in a
  # directory that only this user (or root) can write, it is the user's own choice.
  mkdir -m 0700 "$T/mine"
  ln -s "$T/mine" "$T/link"
  export DISTD_SOCKET=$T/link/d.sock
  expect_code 125 distctl run -- true
  expect_grep "symbolic link" "$T/err"
  export DISTD_SOCKET=$T/link/run/d.sock
  expect_code 0 distctl run -- true
  DPID=$(pgrep -f "distd --listen unix:$DISTD_SOCKET")
}

test_other_users_daemon() {
  other_user
  unset DISTD_ADDR
  # The other user's own distd, in their own directory, behind a link where ours would be.
  as_other mkdir -m 0700 "$PUB/theirs"
  as_other "$BIN/distd" --listen "unix:$PUB/theirs/d.sock" --state-dir "$PUB/theirs/state" \
    >"$T/their.log" 2>&1 &
  local their=$!
  wait_until 10 test -S "$PUB/theirs/d.sock" || fail "the other user's distd did not start"
  as_other ln -s "$PUB/theirs" "$PUB/distd-0"
  as_other chmod 0777 "$PUB/theirs" "$PUB/theirs/d.sock"
  for addr in "DISTD_SOCKET=$PUB/distd-0/d.sock" "DISTD_ADDR=unix:$PUB/theirs/d.sock"; do
    expect_code 125 env "$addr" SECRET=x "$DISTCTL" run -- sh -c 'id -u; echo "$SECRET"'
    expect_grep "runs as uid $OTHER_UID" "$T/err"
    expect_grep "nothing was sent" "$T/err"
    [ ! -s "$T/out" ] || fail "a job ran: $(cat "$T/out")"
  done
  kill -TERM "$their"
  wait "$their"
}

test_stalled_daemon() {
  unset DISTD_ADDR
  export DISTD_SOCKET=$SOCK
  start_daemon
  kill -STOP "$DPID"
  # A connection is accepted (the kernel's backlog) and never answered.
  expect_code 125 timeout 30 "$DISTCTL" status
  expect_grep "pid $DPID" "$T/err"
  expect_grep "does not answer" "$T/err"
  # With the backlog full, connecting fails at once, and the daemon started in its place
  # finds the lock taken: the lock's holder is named.
  # perl-base is part of every Debian system.
  perl -MSocket -MFcntl -e 'my @s; for (1..200) { socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die;
      my $f = fcntl($s, F_GETFL, 0); fcntl($s, F_SETFL, $f | O_NONBLOCK);
      connect($s, pack_sockaddr_un($ARGV[0])); push @s, $s } $| = 1; print "full\n"; sleep 60' \
    "$SOCK" >"$T/filler" 2>&1 &
  FILLER=$!
  wait_until 10 grep -q full "$T/filler" || fail "could not fill the backlog"
  expect_code 125 timeout 30 "$DISTCTL" status
  expect_grep "pid $DPID" "$T/err"
  expect_grep "kill -CONT $DPID" "$T/err"
  kill "$FILLER"
  kill -CONT "$DPID"
  still_serving
}

test_deleted_socket() {
  start_daemon
  rm -f "$SOCK"
  wait_until 10 test -S "$SOCK" || fail "the socket was not made anew"
  still_serving
  # Replaced by something else: made anew too.
  rm -f "$SOCK"
  : >"$SOCK"
  wait_until 10 test -S "$SOCK" || fail "the replaced socket was not made anew"
  still_serving
  # The directory itself goes: nobody could reach this distd, which stops with a reason.
  mv "$T" "$T.gone"
  ln -s "$T.gone" "$T"  # so that the logs and the cleanup still find their files
  local gone=$DPID
  wait_until 20 bash -c "! kill -0 $gone 2>/dev/null" || fail "distd kept running, unreachable"
  wait "$gone"
  DPID=
  expect_grep "nobody can reach" "$T/distd.log"
  rm -f "$T"
  mv "$T.gone" "$T"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# distd on TCP with TLS, tokens and client certificates, made by docker/gen-certs.sh; the
# README's three commands of a remote CI agent; every refusal runs nothing.
test_remote() {
  local src certs port tcp bin_dir
  bin_dir=$(cd "$BIN" && pwd)
  src=$(cd "$(dirname "$0")/../.." && pwd)
  certs=$T/certs
  "$src/docker/gen-certs.sh" "$certs" >/dev/null || fail "gen-certs failed"
  port=$(free_port)
  tcp=tcp:127.0.0.1:$port
  # Set-ups that are not safe, or not whole, are refused before anything starts (exit 2).
  expect_code 2 "$BIN/distd" --listen "unix:$SOCK" --listen "$tcp"
  expect_grep "TCP needs TLS" "$T/err"
  expect_code 2 "$BIN/distd" --listen "unix:$SOCK" --listen "tcp:0.0.0.0:$port" \
    --insecure-loopback --token-file "$certs/tokens"
  expect_grep "plain TCP is refused off loopback" "$T/err"
  expect_code 2 "$BIN/distd" --listen "unix:$SOCK" --listen "$tcp" \
    --tls-cert "$certs/server.crt" --tls-key "$certs/server.key"
  expect_grep "must authenticate" "$T/err"
  expect_code 2 "$BIN/distd" --listen "unix:$SOCK" --token-file "$certs/tokens"
  expect_grep "add --listen tcp:" "$T/err"
  [ ! -e "$SOCK" ] || fail "a refused distd made its socket"

  start_daemon 2 --listen "$tcp" --tls-cert "$certs/server.crt" --tls-key "$certs/server.key" \
    --token-file "$certs/tokens" --tls-client-ca "$certs/ca.crt"
  wait_until 10 grep -q "$tcp (TLS, 2 tokens, client certificates)" "$T/distd.log" ||
    fail "distd does not say it serves $tcp"

  # The README's commands, as a CI agent runs them.
  mkdir -p "$T/agent"
  cp -r "$certs" "$T/agent/certs"
  printf '%s\n' "sh -c 'echo one > $T/agent/one'" "sh -c 'echo two > $T/agent/two'" \
    >"$T/agent/jobs.txt"
  # (at this test's port instead of 7070)
  sed -n '/<!-- remote-ci/,/^```$/p' "$src/README.md" | sed '1,2d;$d' | sed "s/:7070/:$port/" \
    >"$T/agent/ci.sh"
  [ "$(wc -l <"$T/agent/ci.sh")" -eq 3 ] || fail "the README's remote CI snippet: $(cat "$T/agent/ci.sh")"
  (cd "$T/agent" && env -u DISTD_ADDR PATH="$bin_dir:$PATH" DISTD_HOST=127.0.0.1 CI_PIPELINE_ID=77 \
    bash -e ci.sh >"$T/out" 2>"$T/err") || fail "the README's remote CI commands: $(cat "$T/err")"
  [ "$(cat "$T/agent/one" "$T/agent/two")" = "one
two" ] || fail "the remote build's jobs did not run"
  distctl status >"$T/status"
  expect_grep "ci-77" "$T/status"
  # Tokens are never logged; their names are.
  expect_grep "token:ci" "$T/distd.log"
  local secret
  secret=$(awk '{print $2}' "$certs/ci.token")
  ! grep -qF "$secret" "$T/distd.log" || fail "distd logged a token"

  local remote=("$DISTCTL" --addr "$tcp" --tls-ca "$certs/ca.crt")
  expect_code 0 "${remote[@]}" --token-file "$certs/ci.token" --build ci-1 run -- echo hi
  [ "$(cat "$T/out")" = hi ] || fail "a remote run's output: $(cat "$T/out")"
  # A client certificate instead of a token.
  expect_code 0 "${remote[@]}" --tls-cert "$certs/client.crt" --tls-key "$certs/client.key" \
    --build ci-cert run -- echo by-cert
  [ "$(cat "$T/out")" = by-cert ] || fail "a run by certificate: $(cat "$T/out")"
  # gen-certs's certificate is limited as the ci token is.
  expect_code 125 "${remote[@]}" --tls-cert "$certs/client.crt" --tls-key "$certs/client.key" \
    --build nightly run -- touch "$T/ran"
  expect_grep "cert:ci-agent may act only on builds named ci-" "$T/err"
  # Refusals, each with its reason, running nothing.
  expect_code 125 "${remote[@]}" --build ci-2 run -- touch "$T/ran"
  expect_grep "needs a token" "$T/err"
  printf 'ci %s\n' 0123456789abcdef0123456789abcdef >"$T/wrong.token"
  chmod 600 "$T/wrong.token"
  expect_code 125 "${remote[@]}" --token-file "$T/wrong.token" --build ci-2 run -- touch "$T/ran"
  expect_grep "does not know this token" "$T/err"
  expect_code 125 "${remote[@]}" --token-file "$certs/ci.token" --build nightly run -- touch "$T/ran"
  expect_grep "token:ci may act only on builds named ci-" "$T/err"
  expect_code 125 "$DISTCTL" --addr "$tcp" --insecure-loopback --token-file "$certs/ci.token" \
    --build ci-2 run -- touch "$T/ran"
  expect_code 125 "$DISTCTL" --addr "$tcp" --token-file "$certs/ci.token" --build ci-2 run -- touch "$T/ran"
  expect_grep "certificate verify failed\|handshake" "$T/err"
  chmod 644 "$T/wrong.token"
  expect_code 2 "${remote[@]}" --token-file "$T/wrong.token" --build ci-2 run -- touch "$T/ran"
  expect_grep "chmod 600" "$T/err"
  [ ! -e "$T/ran" ] || fail "a refused command ran"
  # Closing a build is an admin's.
  expect_code 125 "${remote[@]}" --token-file "$certs/ci.token" build close ci-77
  expect_grep "needs an admin token" "$T/err"
  expect_code 0 "${remote[@]}" --token-file "$certs/admin.token" build close ci-77
  # The variables do what the flags do.
  DISTD_ADDR=$tcp DISTD_TLS_CA=$certs/ca.crt DISTD_TLS_CERT=$certs/client.crt \
    DISTD_TLS_KEY=$certs/client.key expect_code 0 distctl --build ci-env run -- echo by-env
  [ "$(cat "$T/out")" = by-env ] || fail "a run by the variables: $(cat "$T/out")"
  still_serving
}

# Plain TCP on loopback, only with --insecure-loopback, and still with a token.
test_remote_loopback() {
  local port tcp
  port=$(free_port)
  tcp=tcp:127.0.0.1:$port
  printf 'ci 0123456789abcdef0123456789abcdef\n' >"$T/tokens"
  chmod 600 "$T/tokens"
  start_daemon 2 --listen "$tcp" --insecure-loopback --token-file "$T/tokens" \
    --max-streams-per-client 1 --max-queued-per-build 2
  expect_code 0 "$DISTCTL" --addr "$tcp" --insecure-loopback --token-file "$T/tokens" run -- echo plain
  [ "$(cat "$T/out")" = plain ] || fail "a plain run's output: $(cat "$T/out")"
  expect_code 125 "$DISTCTL" --addr "$tcp" --insecure-loopback run -- touch "$T/ran"
  expect_grep "needs a token" "$T/err"
  # TLS to a plain port fails; distctl refuses plain TCP anywhere but loopback.
  expect_code 125 "$DISTCTL" --addr "$tcp" --token-file "$T/tokens" run -- touch "$T/ran"
  expect_code 2 "$DISTCTL" --addr "tcp:localhost:$port" --insecure-loopback --token-file "$T/tokens" \
    run -- touch "$T/ran"
  expect_grep "not a numeric loopback address" "$T/err"
  # A limit, with its message, and nothing of the batch queued.
  printf 'touch %s\n' "$T/ran" "$T/ran" "$T/ran" >"$T/three.txt"
  expect_code 125 "$DISTCTL" --addr "$tcp" --insecure-loopback --token-file "$T/tokens" \
    run --bg -f "$T/three.txt"
  expect_grep "the limit of a build is 2" "$T/err"
  [ ! -e "$T/ran" ] || fail "a refused command ran"
  still_serving
}

# Started as systemd starts it from distd.socket (systemd-socket-activate does what systemd
# does): the socket is there first, the first call's connection starts distd, which serves
# the socket it is passed (LISTEN_FDS) and leaves it in place when it stops.
test_socket_activation() {
  command -v systemd-socket-activate >/dev/null || { echo "SKIP [$NAME]: no systemd-socket-activate"; exit 77; }
  local src unit listen exec_start
  src=$(cd "$(dirname "$0")/../.." && pwd)
  # As the user units say: their socket is distctl's default path, with nothing set.
  unit=$src/systemd/user
  listen=$(sed -n 's/^ListenStream=//p' "$unit/distd.socket")
  exec_start=$(sed -n 's/^ExecStart=//p' "$unit/distd.service")
  [ "$listen" = '%t/distd/distd.sock' ] || fail "the user unit listens on $listen"
  [ "$exec_start" = /usr/local/bin/distd ] || fail "the user unit starts $exec_start"
  if command -v systemd-analyze >/dev/null; then
    mkdir "$T/units"
    cp "$unit/distd.socket" "$T/units/user-distd.socket"
    sed "s|$exec_start|$BIN/distd|" "$unit/distd.service" >"$T/units/user-distd.service"
    mkdir "$T/units/system"
    cp "$src/systemd/system/distd.socket" "$T/units/system/"
    sed "s|$exec_start|$BIN/distd|" "$src/systemd/system/distd.service" >"$T/units/system/distd.service"
    systemd-analyze verify "$T/units/user-distd.socket" "$T/units/user-distd.service" \
      "$T/units/system/distd.socket" "$T/units/system/distd.service" >"$T/err" 2>&1 ||
      fail "systemd-analyze verify: $(cat "$T/err")"
    [ ! -s "$T/err" ] || fail "systemd-analyze verify warns: $(cat "$T/err")"
  fi
  # The system unit's directory is the one its tmpfiles line makes, for the unit's user.
  local sys_listen sys_user
  sys_listen=$(sed -n 's/^ListenStream=//p' "$src/systemd/system/distd.socket")
  sys_user=$(sed -n 's/^User=//p' "$src/systemd/system/distd.service")
  grep -qx "d ${sys_listen%/*} 0700 $sys_user $sys_user -" "$src/systemd/system/distd.tmpfiles" ||
    fail "the tmpfiles line does not make ${sys_listen%/*} for $sys_user"
  grep -qx "SocketUser=$sys_user" "$src/systemd/system/distd.socket" ||
    fail "the system socket is not $sys_user's"

  export XDG_RUNTIME_DIR=$T/run
  unset DISTD_ADDR
  SOCK=$T/run/distd/distd.sock
  mkdir -m 0700 "$T/run" "$T/run/distd"  # what DirectoryMode=0700 makes
  systemd-socket-activate -l "$SOCK" -E PATH -E HOME -- "$BIN/distd" --jobs 2 --grace 2s \
    --log-level debug --state-dir "$T/state" >>"$T/distd.log" 2>&1 &
  DPID=$!
  wait_until 10 test -S "$SOCK" || fail "systemd-socket-activate made no socket"
  [ "$(readlink "/proc/$DPID/exe")" != "$(readlink -f "$BIN/distd")" ] ||
    fail "distd started before any connection"
  # This call's connection waits in the backlog while distd starts: no retry, no race.
  expect_code 0 distctl run -- sh -c 'echo activated; ls -l /proc/$$/fd/'
  expect_grep '^activated$' "$T/out"
  ! grep -q 'socket:' "$T/out" || fail "a job inherited a socket: $(cat "$T/out")"
  [ "$(readlink "/proc/$DPID/exe")" = "$(readlink -f "$BIN/distd")" ] || fail "distd is not $DPID"
  expect_grep "serving $SOCK, passed by the service manager" "$T/distd.log"
  expect_code 0 distctl run --bg -- true
  expect_code 0 distctl wait
  kill -TERM "$DPID"
  wait "$DPID"
  local code=$?
  DPID=
  [ "$code" -eq 0 ] || fail "distd exited $code on SIGTERM"
  [ -S "$SOCK" ] || fail "distd removed the socket the service manager passed it"
  # The journal recorded the run; a distd started again on the same socket finds it.
  rm -f "$SOCK"
  systemd-socket-activate -l "$SOCK" -E PATH -E HOME -- "$BIN/distd" --jobs 2 \
    --state-dir "$T/state" >>"$T/distd.log" 2>&1 &
  DPID=$!
  wait_until 10 test -S "$SOCK" || fail "systemd-socket-activate made no socket, again"
  expect_code 0 distctl status --history 5
  expect_grep 'default' "$T/out"
  stop_daemon

  # What a service manager must not get wrong, each refused with what is wrong.
  printf 'x\n' >"$T/file"
  expect_code 2 sh -c 'export LISTEN_PID=$$ LISTEN_FDS=two; exec "$0" --state-dir "$1"' \
    "$BIN/distd" "$T/state2"
  expect_grep "LISTEN_FDS is not a count" "$T/err"
  expect_code 2 sh -c 'export LISTEN_PID=$$ LISTEN_FDS=1; exec 3<&-; exec "$0" --state-dir "$1"' \
    "$BIN/distd" "$T/state2"
  expect_grep "descriptor 3 is not open" "$T/err"
  expect_code 1 sh -c 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" --state-dir "$1" 3<"$2"' \
    "$BIN/distd" "$T/state2" "$T/file"
  expect_grep "not a listening unix stream socket" "$T/err"
  [ ! -e "$T/state2" ] || fail "a refused distd made its state directory"
  # A socket in a directory others may use is refused as one distd would make there.
  mkdir -m 0755 "$T/shared"
  systemd-socket-activate -l "$T/shared/s.sock" -E PATH -E HOME -- "$BIN/distd" \
    --state-dir "$T/state2" >"$T/shared.log" 2>&1 &
  local sa=$!
  wait_until 10 test -S "$T/shared/s.sock" || fail "systemd-socket-activate made no socket"
  python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' \
    "$T/shared/s.sock"
  wait "$sa"
  code=$?
  [ "$code" -eq 1 ] || fail "distd on a shared directory exited $code: $(cat "$T/shared.log")"
  expect_grep "$T/shared.*0755\|$T/shared.*mode" "$T/shared.log"
}

# The README's compiler-launcher recipes: two CMake builds and a Make build at once, each -j8,
# share distd's bound of 2, and all three build right.
test_compiler_launcher() {
  command -v cmake >/dev/null && command -v ninja >/dev/null && command -v make >/dev/null ||
    { echo "SKIP [$NAME]: needs cmake, ninja and make"; exit 77; }
  start_daemon 2
  local p=$T/proj i b app
  mkdir "$p"
  # The compiler, as a job of distd's runs it, notes when each compile ran.
  cat >"$T/probe-cc" <<EOF
#!/bin/sh
[ -n "\${DISTD_JOB_ID:-}" ] || exec gcc "\$@"
start=\$(date +%s%N)
sleep 0.2
gcc "\$@"
code=\$?
echo "\$start \$(date +%s%N)" >>"$T/intervals"
exit \$code
EOF
  chmod +x "$T/probe-cc"
  {
    echo '#include <stdio.h>'
    for i in 1 2 3 4 5 6 7 8; do echo "int f$i(void);"; done
    printf 'int main(void) { printf("%%d\\n", 0'
    for i in 1 2 3 4 5 6 7 8; do printf ' + f%s()' "$i"; done
    printf '); return 0; }\n'
  } >"$p/main.c"
  for i in 1 2 3 4 5 6 7 8; do echo "int f$i(void) { return $i; }" >"$p/f$i.c"; done
  cat >"$p/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(launched C)
add_executable(app main.c f1.c f2.c f3.c f4.c f5.c f6.c f7.c f8.c)
EOF
  printf 'app: main.o f1.o f2.o f3.o f4.o f5.o f6.o f7.o f8.o\n\t$(CC) -o $@ $^\n' >"$p/Makefile"
  printf '%%.o: %%.c\n\t$(CC) -c $< -o $@\n' >>"$p/Makefile"
  for b in a b; do
    CC=$T/probe-cc cmake -S "$p" -B "$T/build-$b" -G Ninja \
      -DCMAKE_C_COMPILER_LAUNCHER="$DISTCTL;run;--" >"$T/configure-$b.log" 2>&1 ||
      fail "cmake configure: $(tail -n 20 "$T/configure-$b.log")"
  done
  rm -f "$T/intervals"
  (DISTD_BUILD=cmake-a cmake --build "$T/build-a" -j 8 >"$T/build-a.log" 2>&1) &
  local pa=$!
  (DISTD_BUILD=cmake-b cmake --build "$T/build-b" -j 8 >"$T/build-b.log" 2>&1) &
  local pb=$!
  (cd "$p" && DISTD_BUILD=make make -j 8 CC="$DISTCTL run -- $T/probe-cc" >"$T/make.log" 2>&1) &
  local pm=$!
  wait "$pa" || fail "the first CMake build: $(tail -n 20 "$T/build-a.log")"
  wait "$pb" || fail "the second CMake build: $(tail -n 20 "$T/build-b.log")"
  wait "$pm" || fail "the Make build: $(tail -n 20 "$T/make.log")"
  for app in "$T/build-a/app" "$T/build-b/app" "$p/app"; do
    [ "$("$app")" = 36 ] || fail "$app printed $("$app")"
  done
  # 9 compiles in each build, and Make's link: all through distd, never more than 2 at once.
  local ran most
  ran=$(wc -l <"$T/intervals")
  [ "$ran" -ge 28 ] || fail "only $ran commands ran through distd"
  most=$(max_overlap "$T/intervals")
  [ "$most" -le 2 ] || fail "$most compiles ran at once under --jobs 2"
  [ "$most" -eq 2 ] || fail "the builds never ran two compiles at once ($most)"
  distctl build list >"$T/out"
  for b in cmake-a cmake-b make; do expect_grep "$b" "$T/out"; done
  still_serving
}

# max_overlap FILE: the most intervals ("start end" a line) of FILE that overlap at any moment.
max_overlap() {
  awk '{print $1, 1; print $2, -1}' "$1" | sort -k1,1n -k2,2n |
    awk '{n += $2; if (n > m) m = n} END {print m + 0}'
}

# The jobserver: a job running plain make (its -j from the MAKEFLAGS distd gives it) takes its
# extra slots from the pool. Two such makes of 16 sleeping targets each, in two builds, under
# --jobs 4: never more than 4 targets at once, and 4 at some moment. A make killed while it
# holds tokens gives them back with its end. --jobserver off: each make runs one at a time.
test_jobserver() {
  command -v make >/dev/null || { echo "SKIP [$NAME]: needs make"; exit 77; }
  local p=$T/nested i most
  mkdir "$p"
  cat >"$T/work" <<EOF
#!/bin/sh
start=\$(date +%s%N)
sleep \${1:-0.3}
echo "\$start \$(date +%s%N) \${DISTD_BUILD:-}" >>"$T/intervals"
EOF
  chmod +x "$T/work"
  {
    printf 'all:'
    for i in $(seq 1 16); do printf ' t%s' "$i"; done
    printf '\nt%%:\n\t@%s\n' "$T/work"
    printf 's%%:\n\t@%s 977.3\n' "$T/work"
  } >"$p/Makefile"
  start_daemon 4
  distctl run -- sh -c 'echo "$MAKEFLAGS"' >"$T/out"
  expect_grep '^ -j4 --jobserver-auth=3,4$' "$T/out"
  MAKEFLAGS="k -j8 --jobserver-auth=7,8 -- X=1" distctl run -- sh -c 'echo "$MAKEFLAGS"' >"$T/out"
  expect_grep '^k -j4 --jobserver-auth=3,4 -- X=1$' "$T/out"
  rm -f "$T/intervals"
  DISTD_BUILD=a distctl run --bg -- make -s -C "$p" >/dev/null || fail "submit a"
  DISTD_BUILD=b distctl run --bg -- make -s -C "$p" >/dev/null || fail "submit b"
  DISTD_BUILD=a distctl wait >"$T/out" 2>&1 || fail "build a: $(cat "$T/out")"
  DISTD_BUILD=b distctl wait >"$T/out" 2>&1 || fail "build b: $(cat "$T/out")"
  [ "$(wc -l <"$T/intervals")" -eq 32 ] || fail "$(wc -l <"$T/intervals") targets ran, not 32"
  most=$(max_overlap "$T/intervals")
  [ "$most" -le 4 ] || fail "$most targets ran at once under --jobs 4"
  [ "$most" -eq 4 ] || fail "the nested makes never used the pool's 4 slots ($most)"
  # b's make got a slot while a's still had targets to run: the tokens a gave back went to the
  # queued job first, not all to a again.
  local a_last b_first
  a_last=$(awk '$3 == "a" {print $2}' "$T/intervals" | sort -n | tail -n 1)
  b_first=$(awk '$3 == "b" {print $1}' "$T/intervals" | sort -n | head -n 1)
  [ "$b_first" -lt "$a_last" ] || fail "build b's make waited for all of build a's"
  # A make that holds three tokens (four targets running) is killed: the pool is whole again.
  DISTD_BUILD=k distctl run --bg -- make -s -C "$p" s1 s2 s3 s4 >/dev/null || fail "submit k"
  wait_until 10 sh -c "[ \$(pgrep -fc '^sleep 977[.]3$') -eq 4 ]" || fail "make did not take 3 tokens"
  distctl status --json >"$T/out"
  expect_grep '"lent": *"3"' "$T/out"
  DISTD_BUILD=k distctl abort --reason test >/dev/null || fail "abort"
  no_survivor 'sleep 977.3'
  distctl status --json >"$T/out"
  expect_grep '"lent": *"0"' "$T/out"
  rm -f "$T/intervals"
  for i in 1 2 3 4; do DISTD_BUILD=m distctl run --bg -- "$T/work" 1 >/dev/null; done
  DISTD_BUILD=m distctl wait >/dev/null || fail "build m"
  most=$(max_overlap "$T/intervals")
  [ "$most" -eq 4 ] || fail "after the kill only $most jobs ran at once"
  stop_daemon

  start_daemon 4 --jobserver off --no-journal  # the builds above are not restored
  distctl run -- sh -c 'echo "[$MAKEFLAGS]"' >"$T/out"
  expect_grep '^\[\]$' "$T/out"
  rm -f "$T/intervals"
  DISTD_BUILD=a distctl run --bg -- make -s -C "$p" t1 t2 t3 t4 >/dev/null
  DISTD_BUILD=b distctl run --bg -- make -s -C "$p" t1 t2 t3 t4 >/dev/null
  DISTD_BUILD=a distctl wait >/dev/null && DISTD_BUILD=b distctl wait >/dev/null || fail "off"
  most=$(max_overlap "$T/intervals")
  [ "$most" -eq 2 ] || fail "without a jobserver $most targets ran at once, not 2"
  stop_daemon

  # The fifo style (make 4.4, ninja 1.13): beside the socket, 0600, gone with the job.
  start_daemon 4 --jobserver fifo --no-journal
  distctl run -- sh -c 'f=${MAKEFLAGS##*fifo:}; echo "$MAKEFLAGS"; stat -c %a "$f"; head -c 1 <"$f"; echo' >"$T/out"
  expect_grep "^ -j4 --jobserver-auth=fifo:$T/jobserver-" "$T/out"
  expect_grep '^600$' "$T/out"
  expect_grep '^+$' "$T/out"
  ls "$T" | grep -q '^jobserver-' && fail "a job's fifo was left: $(ls "$T")"
  stop_daemon
  expect_code 2 "$BIN/distd" --listen "unix:$SOCK" --jobserver fast
  expect_grep 'is not one of pipe, fifo, off' "$T/err"
  # A pool too large for the limit of open files is said so at start.
  (ulimit -n 400 && exec timeout -s TERM 2 "$BIN/distd" --listen "unix:$SOCK" --jobs 64 --no-journal) \
    >"$T/out" 2>&1
  expect_grep 'limit of open files (400) is low for 64 jobs' "$T/out"
}

# The Slurm executor, end to end on a one-node Slurm cluster that the test starts on this host
# (munged, slurmctld and slurmd, as root, with a configuration made from hostname -s and
# nproc): jobs run as srun, with their exit codes, output and directories; --jobs bounds the
# jobs in flight; a failing job stops its build on the cluster, and nothing of it is left.
start_slurm() {
  local s=$T/slurm host cpus
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null &&
    command -v srun >/dev/null || { echo "SKIP [$NAME]: needs slurmctld, slurmd, srun and munged"; exit 77; }
  [ "$(id -u)" -eq 0 ] || { echo "SKIP [$NAME]: starts slurmd, which needs root"; exit 77; }
  mkdir -p "$s/state" "$s/spool" "$s/munge"
  chmod 711 "$s/munge"
  head -c 1024 /dev/urandom >"$s/munge/munge.key"
  chmod 400 "$s/munge/munge.key"
  munged --force --socket="$s/munge/socket" --key-file="$s/munge/munge.key" --log-file="$s/munge/log" \
    --pid-file="$s/munge/pid" --seed-file="$s/munge/seed" || fail "munged: $(cat "$s/munge/log")"
  SLURM_PIDFILES="$s/munge/pid"
  host=$(hostname -s)
  cpus=$(nproc)
  cat >"$s/slurm.conf" <<EOF
ClusterName=distdtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16917
SlurmdPort=16918
AuthType=auth/munge
AuthInfo=socket=$s/munge/socket
CredType=cred/munge
StateSaveLocation=$s/state
SlurmdSpoolDir=$s/spool
SlurmctldPidFile=$s/slurmctld.pid
SlurmdPidFile=$s/slurmd.pid
SlurmctldLogFile=$s/slurmctld.log
SlurmdLogFile=$s/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=2
MinJobAge=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=distd Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
  export SLURM_CONF=$s/slurm.conf
  slurmctld -c || fail "slurmctld: $(tail -n 20 "$s/slurmctld.log")"
  SLURM_PIDFILES="$SLURM_PIDFILES $s/slurmctld.pid"
  slurmd || fail "slurmd: $(tail -n 20 "$s/slurmd.log")"
  SLURM_PIDFILES="$SLURM_PIDFILES $s/slurmd.pid"
  wait_until 30 sh -c 'sinfo -h -o %t 2>/dev/null | grep -qx idle' ||
    fail "the node did not come up: $(sinfo 2>&1; tail -n 20 "$s/slurmctld.log" "$s/slurmd.log")"
}

stop_slurm() {
  local f pids=
  for f in ${SLURM_PIDFILES:-}; do
    [ -f "$f" ] && pids="$pids $(cat "$f")"
  done
  SLURM_PIDFILES=
  [ -n "$pids" ] || return 0
  kill $pids 2>/dev/null
  for _ in $(seq 1 200); do  # gone before the next test may want the ports
    kill -0 $pids 2>/dev/null || return 0
    sleep 0.05
  done
}

test_slurm() {
  start_slurm
  start_daemon 3 --executor slurm
  # A job is a Slurm job of its build's name, in its directory, with its exit code and output.
  mkdir "$T/dir"
  (cd "$T/dir" && DISTD_BUILD=one distctl run -- sh -c 'echo "$SLURM_JOB_NAME $SLURM_JOB_ID $(pwd)"; echo oops >&2; exit 3') \
    >"$T/out" 2>"$T/err"
  [ $? -eq 3 ] || fail "exit code $?, not 3: $(cat "$T/err")"
  grep -Eq "^distd-one [0-9]+ $T/dir\$" "$T/out" || fail "not run as a Slurm job: $(cat "$T/out")"
  expect_grep '^oops$' "$T/err"
  # --jobs 3: never more than 3 in flight, and 3 at once at some moment.
  cat >"$T/work" <<EOF
#!/bin/sh
start=\$(date +%s%N)
sleep 0.5
echo "\$start \$(date +%s%N) \$SLURM_JOB_ID" >>"$T/intervals"
EOF
  chmod +x "$T/work"
  local i most
  for i in $(seq 1 6); do DISTD_BUILD=many distctl run --bg -- "$T/work" >/dev/null || fail "submit"; done
  DISTD_BUILD=many timeout 60 "$DISTCTL" wait >"$T/out" 2>&1 || fail "build many: $(cat "$T/out")"
  [ "$(awk '$3 != "" {print $3}' "$T/intervals" | sort -u | wc -l)" -eq 6 ] ||
    fail "not 6 Slurm jobs: $(cat "$T/intervals")"
  most=$(max_overlap "$T/intervals")
  [ "$most" -le 3 ] || fail "$most jobs in flight under --jobs 3"
  [ "$most" -eq 3 ] || fail "never 3 jobs in flight at once ($most)"
  # Fail-fast: the failure stops the build's other jobs on the cluster.
  DISTD_BUILD=ff distctl run --bg -- sleep 977.9 >/dev/null
  DISTD_BUILD=ff distctl run --bg -- sleep 977.9 >/dev/null
  wait_until 20 sh -c '[ "$(squeue -h -n distd-ff -t R | wc -l)" -eq 2 ]' || fail "the sleeps did not start"
  DISTD_BUILD=ff distctl run --bg -- sh -c 'exit 5' >/dev/null
  DISTD_BUILD=ff expect_code 1 timeout 60 "$DISTCTL" wait
  expect_grep 'FAILED: sh -c' "$T/err"
  no_survivor '(/usr/bin/)?sleep 977[.]9'
  wait_until 20 sh -c '[ -z "$(squeue -h -n distd-ff)" ]' || fail "left on the cluster: $(squeue)"
  # An srun killed outright (as by the OOM killer) fails its build; the scancel by name then
  # takes its job, which no srun stands for any more, off the cluster.
  DISTD_BUILD=kk distctl run --bg -- sleep 977.9 >/dev/null
  DISTD_BUILD=kk distctl run --bg -- sleep 977.9 >/dev/null
  wait_until 20 sh -c '[ "$(squeue -h -n distd-kk -t R | wc -l)" -eq 2 ]' || fail "the sleeps did not start"
  pkill -KILL -of '^[^ ]*srun --job-name=distd-kk' || fail "no srun to kill"
  DISTD_BUILD=kk expect_code 1 timeout 60 "$DISTCTL" wait
  no_survivor '(/usr/bin/)?sleep 977[.]9'
  wait_until 20 sh -c '[ -z "$(squeue -h -n distd-kk)" ]' || fail "left on the cluster: $(squeue)"
  # An abort, as a CI's cancel button.
  DISTD_BUILD=ab distctl run --bg -- sleep 977.9 >/dev/null
  wait_until 20 sh -c '[ "$(squeue -h -n distd-ab -t R | wc -l)" -eq 1 ]' || fail "the sleep did not start"
  DISTD_BUILD=ab expect_code 0 timeout 60 "$DISTCTL" abort --reason cancelled
  no_survivor '(/usr/bin/)?sleep 977[.]9'
  wait_until 20 sh -c '[ -z "$(squeue -h -n distd-ab)" ]' || fail "left on the cluster: $(squeue)"
  still_serving
  stop_daemon
  expect_code 2 "$BIN/distd" --listen "unix:$SOCK" --executor slurm --jobserver pipe
  expect_grep 'cannot be used with --executor slurm' "$T/err"
  expect_code 2 "$BIN/distd" --listen "unix:$SOCK" --executor cloud
  expect_grep 'is not one of local, slurm' "$T/err"
  PATH=/nowhere expect_code 1 "$BIN/distd" --listen "unix:$SOCK" --executor slurm --no-journal
  expect_grep 'srun is not on PATH' "$T/err"
  stop_slurm
}

# http_get PORT PATH [HEADER]: the whole answer to a GET, through bash's /dev/tcp.
http_get() {
  local fd
  exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n%s\r\n' "$2" "$1" "${3:+$3$'\r\n'}" >&"$fd"
  timeout 10 cat <&"$fd"
  exec {fd}<&-
}

# distd --metrics-listen, scraped as Prometheus does: by distd's user or with an admin token;
# anyone else is refused, and the counts follow what the builds did.
test_metrics() {
  local port sample
  port=$(free_port)
  printf '%s\n' 'ops 0123456789abcdef0123456789abcdef admin' \
    'ci fedcba9876543210fedcba9876543210 builds=ci-' >"$T/tokens"
  chmod 600 "$T/tokens"
  expect_code 2 "$BIN/distd" --listen "unix:$SOCK" --metrics-listen "0.0.0.0:$port"
  expect_grep "loopback" "$T/err"
  start_daemon 2 --metrics-listen "127.0.0.1:$port" --token-file "$T/tokens"
  sample() { grep -m1 "^$1 " "$T/scrape" | cut -d' ' -f2; }
  expect_code 0 distctl run -- true
  expect_code 0 distctl run --bg -- sleep 977.4
  http_get "$port" /metrics >"$T/scrape"
  expect_grep '^HTTP/1.1 200 ' "$T/scrape"
  expect_grep '^Content-Type: text/plain; version=0.0.4' "$T/scrape"
  [ "$(sample 'distd_build_jobs_running{build="default"}')" = 1 ] || fail "running: $(cat "$T/scrape")"
  [ "$(sample distd_pool_jobs)" = 2 ] || fail "pool: $(cat "$T/scrape")"
  expect_code 0 distctl --build f run --bg -- false
  expect_code 1 distctl --build f wait
  expect_code 0 distctl abort
  http_get "$port" /metrics "Authorization: Bearer 0123456789abcdef0123456789abcdef" >"$T/scrape"
  expect_grep '^HTTP/1.1 200 ' "$T/scrape"
  [ "$(sample 'distd_jobs_finished_total{outcome="succeeded"}')" = 1 ] || fail "$(cat "$T/scrape")"
  [ "$(sample 'distd_jobs_finished_total{outcome="failed"}')" = 1 ] || fail "$(cat "$T/scrape")"
  [ "$(sample 'distd_jobs_finished_total{outcome="killed"}')" = 1 ] || fail "$(cat "$T/scrape")"
  [ "$(sample 'distd_builds_stopped_total{cause="failure"}')" = 1 ] || fail "$(cat "$T/scrape")"
  [ "$(sample 'distd_builds_stopped_total{cause="abort"}')" = 1 ] || fail "$(cat "$T/scrape")"
  [ "$(sample 'distd_build_stop_seconds_count{cause="abort"}')" = 1 ] || fail "$(cat "$T/scrape")"
  [ "$(sample distd_jobs_queued_total)" = 3 ] || fail "$(cat "$T/scrape")"
  # A token limited to some builds may not read every build's figures; a wrong one is unknown.
  http_get "$port" /metrics "Authorization: Bearer fedcba9876543210fedcba9876543210" >"$T/scrape"
  expect_grep '^HTTP/1.1 403 ' "$T/scrape"
  http_get "$port" /metrics "Authorization: Bearer 0123456789abcdef0123456789abcdeX" >"$T/scrape"
  expect_grep '^HTTP/1.1 401 ' "$T/scrape"
  ! grep -q 0123456789abcdef "$T/distd.log" || fail "a token was logged"
  if [ "$(id -u)" -eq 0 ]; then
    other_user
    as_other bash -c "$(declare -f http_get); http_get $port /metrics" >"$T/scrape"
    expect_grep '^HTTP/1.1 401 ' "$T/scrape"
    expect_grep "only distd's user" "$T/scrape"
  fi
  # The port is taken: a second distd says so and starts nothing.
  mkdir -m 0700 "$T/second"
  expect_code 1 "$BIN/distd" --listen "unix:$T/second/d.sock" --metrics-listen "127.0.0.1:$port" \
    --no-journal
  expect_grep "cannot listen" "$T/err"
  still_serving
}

# Colour on a terminal only, and never with NO_COLOR; the columns stay aligned either way.
test_colour() {
  command -v script >/dev/null || { echo "SKIP [$NAME]: no script(1)"; exit 77; }
  start_daemon 2
  expect_code 0 distctl --build red run --bg -- false
  expect_code 1 distctl --build red wait
  expect_code 0 distctl --build green run --bg -- true
  expect_code 0 distctl --build green wait
  on_tty() { TERM=xterm SHELL=/bin/sh script -qec "$*" /dev/null; }
  on_tty "$DISTCTL" status >"$T/tty.out"
  grep -q $'\x1b\[31mdead\x1b\[0m' "$T/tty.out" || fail "no red on a terminal: $(cat -v "$T/tty.out")"
  grep -q $'\x1b\[32mrunning\x1b\[0m' "$T/tty.out" || fail "no green on a terminal: $(cat -v "$T/tty.out")"
  NO_COLOR=1 on_tty "$DISTCTL" status >"$T/plain.out"
  ! grep -q $'\x1b' "$T/plain.out" || fail "colour with NO_COLOR: $(cat -v "$T/plain.out")"
  distctl status >"$T/pipe.out"
  ! grep -q $'\x1b' "$T/pipe.out" || fail "colour into a pipe: $(cat -v "$T/pipe.out")"
  # The same table, but for the codes (script turns each \n into \r\n).
  sed $'s/\x1b\\[[0-9;]*m//g; s/\r$//' "$T/tty.out" >"$T/stripped.out"
  diff "$T/stripped.out" "$T/pipe.out" >/dev/null ||
    fail "the coloured table differs: $(diff "$T/stripped.out" "$T/pipe.out")"
  on_tty "$DISTCTL" --build red wait >"$T/tty.out"
  grep -q $'\x1b\[1;31mFAILED:\x1b\[0m false' "$T/tty.out" || fail "wait on a terminal: $(cat -v "$T/tty.out")"
  expect_code 1 distctl --build red wait
  expect_grep '^FAILED: false$' "$T/err"
}

# The README's CI snippets, each run as its CI would run it (with its variables), with sh: the
# build named after the pipeline, built, and closed; a failing one exits 1 with its FAILED
# report, and its build is closed too.
test_ci_snippets() {
  local src name code
  src=$(cd "$(dirname "$0")/../.." && pwd)
  start_daemon 2
  mkdir -p "$T/bin"
  ln -s "$(cd "$BIN" && pwd)/distctl" "$T/bin/distctl"
  for name in github gitlab jenkins; do
    sed -n "/<!-- ci-snippet: $name -->/,/^\`\`\`\$/p" "$src/README.md" | sed '1,2d;$d' >"$T/$name.sh"
    [ "$(wc -l <"$T/$name.sh")" -ge 5 ] || fail "the README's $name snippet: $(cat "$T/$name.sh")"
    for outcome in pass fail; do
      rm -rf "$T/ws" && mkdir "$T/ws"
      echo 'int f(void) { return 0; }' >"$T/ws/a.c"
      echo 'int f(void); int main(void) { return f(); }' >"$T/ws/b.c"
      printf 'cc -c a.c\ncc -c b.c\n' >"$T/ws/jobs.txt"
      [ "$outcome" = pass ] || printf 'sh -c "echo broken >&2; exit 4"\n' >>"$T/ws/jobs.txt"
      (cd "$T/ws" && env PATH="$T/bin:$PATH" GITHUB_RUN_ID=4711 GITHUB_RUN_ATTEMPT=2 \
        CI_PIPELINE_ID=815 CI_JOB_ID=9 JOB_NAME="team/app main" BUILD_NUMBER=33 \
        sh "$T/$name.sh" >"$T/out" 2>"$T/err")
      code=$?
      if [ "$outcome" = pass ]; then
        [ "$code" -eq 0 ] || fail "the $name snippet exited $code: $(cat "$T/err")"
        "$T/ws/app" || fail "the $name snippet's program does not run"
      else
        [ "$code" -eq 1 ] || fail "the failing $name snippet exited $code: $(cat "$T/err")"
        expect_grep "FAILED: sh -c" "$T/err"
        expect_grep "broken" "$T/err"
        [ ! -e "$T/ws/app" ] || fail "the failing $name snippet linked"
      fi
    done
  done
  # Every build was closed; the journal names each after its pipeline.
  distctl build list >"$T/out"
  expect_grep "no builds" "$T/out"
  distctl status --history 20 >"$T/out"
  for name in gh-4711-2 gl-815-9 jenkins-team_app_main-33; do expect_grep " $name " "$T/out"; done
  still_serving
}

"test_$NAME"
echo "PASS [$NAME]"
