#!/usr/bin/env bash
# tests/model/check.sh -- model-check the engine's dying protocol with spin.
#
#   dying.pml           must verify: a full safety run (assertions, invariants, invalid end
#                       states) with 0 errors, and both LTL properties with 0 errors;
#   deadlock_2015.pml   (the 2015 cmd/dist bug) must be rejected with an invalid end state;
#                       its trail is printed.
#
# Usage: tests/model/check.sh [--vacuity] [--keep]      (from any directory)
#   --vacuity  also show that the events the properties are about do happen in the model:
#              for each REACH(n, ...) mark in dying.pml, build with -DREACH_TEST=n (which
#              asserts that event n never happens) and require spin to refute it.
#   --keep     keep the work directory (pan sources, trails) and print its path.
# Environment: SPIN (default spin), CC (default cc).
# Exit status: 0 when both models behave as expected, 1 otherwise, 2 on a usage/tool error.
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SPIN="${SPIN:-spin}"
CC="${CC:-cc}"
vacuity=0
keep=0
for arg in "$@"; do
  case "$arg" in
    --vacuity) vacuity=1 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "check.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done
for tool in "$SPIN" "$CC"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "check.sh: $tool not found" >&2
    exit 2
  fi
done

# pan settings.  -m: search depth bound (the models' deepest runs are ~40 steps; pan reports
# "max search depth too small" if a run is cut, which fails the check).  -w24: 2^24-slot
# hash table, exhaustive storage (no bitstate).  MEMLIM: pan stops rather than use more
# than 3 GB.  NFAIR: room for the 11 processes under weak fairness (-f).
PAN_RUN=(-m100000 -w24)
CFLAGS=(-O2 -w -DMEMLIM=3072)

work="$(mktemp -d "${TMPDIR:-/tmp}/distd-model.XXXXXX")"
if [ "$keep" = 1 ]; then
  echo "work directory: $work"
else
  trap 'rm -rf "$work"' EXIT
fi

start_all=$(date +%s)

# run_pan DIR MODEL SPINFLAGS CFLAGS PANFLAGS -> pan's output in DIR/pan.out.
# Each run has its own directory: spin writes pan.* (and pan its trail) in the cwd.
run_pan() {
  local dir="$1" model="$2" spinflags="$3" ccflags="$4" panflags="$5"
  mkdir -p "$work/$dir"
  cp "$here/dying.pml" "$here/deadlock_2015.pml" "$work/$dir/"
  (
    cd "$work/$dir" || exit 1
    # shellcheck disable=SC2086  # the flag strings are word lists
    "$SPIN" $spinflags -a "$model" >spin.out 2>&1 || { cat spin.out; exit 1; }
    # shellcheck disable=SC2086
    "$CC" "${CFLAGS[@]}" $ccflags -o pan pan.c >cc.out 2>&1 || { cat cc.out; exit 1; }
    # shellcheck disable=SC2086
    ./pan "${PAN_RUN[@]}" $panflags >pan.out 2>&1
    exit 0
  )
}

# summary FILE: one line of figures from pan's output.
summary() {
  local f="$1"
  local stored matched depth mem secs
  stored=$(awk '/states, stored/ {print $1; exit}' "$f")
  matched=$(awk '/states, matched/ {print $1; exit}' "$f")
  depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$f" | head -1)
  mem=$(awk '/total actual memory usage/ {print $1; exit}' "$f")
  secs=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\) seconds.*/\1/p' "$f" | head -1)
  echo "states stored ${stored:-?}, matched ${matched:-?}, depth ${depth:-?}," \
       "memory ${mem:-?} MB, ${secs:-?} s"
}

errors_of() { sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$1" | head -1; }

# complete FILE: the search was exhaustive (not cut by the depth bound or memory).
complete() {
  ! grep -q -e 'max search depth too small' -e 'Search not completed' \
            -e 'out of memory' -e 'aborting' "$1"
}

# ---------------------------------------------------------------------------- the runs
# Two lanes, for two cores: the longest run (LTL all_return under weak fairness) alone in the
# background, everything else in the foreground.  Each run leaves DIR/pan.out, or DIR/failed.
launch() {  # DIR MODEL SPINFLAGS CFLAGS PANFLAGS
  run_pan "$@" || : >"$work/$1/failed"
}
launch ltl_all_return dying.pml "" "-DNFAIR=4" "-a -f -N all_return" &
lane=$!
launch safety dying.pml "" "-DSAFETY -DNOCLAIM" ""
launch ltl_dying_releases dying.pml "" "-DNFAIR=4" "-a -f -N dying_releases"
launch bug deadlock_2015.pml "" "-DSAFETY -DNOCLAIM" ""
launch bug_ltl deadlock_2015.pml "" "-DNFAIR=4" "-a -f -N all_return"
wait "$lane"

built() { [ -f "$work/$1/pan.out" ] && [ ! -f "$work/$1/failed" ]; }

# ---------------------------------------------------------------------------- dying.pml
echo "== dying.pml: the engine's dying protocol (3 workers, 2 waiters, 2 aborters," \
     "4+1 jobs, close)"
dying_ok=1
if built safety; then
  out="$work/safety/pan.out"
  e=$(errors_of "$out")
  echo "   safety (spin -a; cc -O2 -DSAFETY -DNOCLAIM; ./pan ${PAN_RUN[*]}):" \
       "errors: ${e:-?}"
  echo "     $(summary "$out")"
  if [ "${e:-x}" != 0 ] || ! complete "$out"; then
    dying_ok=0
    grep -E 'pan:|violated|invalid end state|max search depth' "$out" | head -5 | sed 's/^/     /'
  fi
else
  dying_ok=0
  echo "   safety: could not build or run pan"
fi
for claim in all_return dying_releases; do
  if built "ltl_$claim"; then
    out="$work/ltl_$claim/pan.out"
    e=$(errors_of "$out")
    echo "   ltl $claim (cc -O2 -DNFAIR=4; ./pan -a -f -N $claim ${PAN_RUN[*]}):" \
         "errors: ${e:-?}"
    echo "     $(summary "$out")"
    if [ "${e:-x}" != 0 ] || ! complete "$out"; then
      dying_ok=0
      grep -E 'pan:|acceptance cycle|violated' "$out" | head -5 | sed 's/^/     /'
    fi
  else
    dying_ok=0
    echo "   ltl $claim: could not build or run pan"
  fi
done
if [ "$dying_ok" = 1 ]; then
  echo "   PASS: dying.pml verifies: 0 errors in every run"
else
  echo "   FAIL: dying.pml does not verify"
fi

# ---------------------------------------------------------------------------- deadlock_2015
echo
echo "== deadlock_2015.pml: the same engine with the 2015 cmd/dist bug (the queue is left" \
     "to drain, no worker takes it)"
bug_ok=1
if built bug; then
  out="$work/bug/pan.out"
  e=$(errors_of "$out")
  echo "   safety (spin -a; cc -O2 -DSAFETY -DNOCLAIM; ./pan ${PAN_RUN[*]}):" \
       "errors: ${e:-?}"
  grep -E '^pan:[0-9]+: ' "$out" | head -1 | sed 's/^/     /'
  if grep -q 'invalid end state (at depth' "$out" && [ "${e:-x}" = 1 ] &&
     [ -f "$work/bug/deadlock_2015.pml.trail" ]; then
    echo "   trail (spin -t -p deadlock_2015.pml: the first line of each step, with the" \
         "model's MSC printfs):"
    (cd "$work/bug" && "$SPIN" -t -p deadlock_2015.pml 2>&1) | awk '
      /^spin: trail ends/  { ended = 1; print "     " $0; next }
      ended && /^#processes/ { print "     " $0; next }
      ended && /queue [0-9]+ \((bqueue|bwaiters|death_waiters)\)/ { print "     " $0; next }
      ended && /proc +[0-9]+ \(/ {
        line = $0; if (line !~ /valid end state/) line = line "   <- blocked"
        print "     " line; next
      }
      ended { next }
      /\[printf\(/ { next }
      /MSC:/ { sub(/^[ \t]*/, ""); print "                 " $0; next }
      /^ *[0-9]+:\tproc/ { if ($1 != last) { print "     " $0; last = $1 } }
    ' | head -n 80
  else
    bug_ok=0
    echo "   expected an invalid end state and errors: 1; pan said:"
    grep -E 'pan:|errors' "$out" | head -5 | sed 's/^/     /'
  fi
else
  bug_ok=0
  echo "   safety: could not build or run pan"
fi
# Not part of the verdict: the LTL property dying.pml satisfies fails here, so it is not
# vacuous.
if built bug_ltl; then
  if grep -q 'acceptance cycle' "$work/bug_ltl/pan.out"; then
    echo "   (ltl all_return fails here too: $(grep -m1 'acceptance cycle' "$work/bug_ltl/pan.out"))"
  else
    echo "   (note: ltl all_return did not fail here: errors $(errors_of "$work/bug_ltl/pan.out"))"
  fi
fi
if [ "$bug_ok" = 1 ]; then
  echo "   PASS: deadlock_2015.pml is rejected with an invalid end state (a deadlock)," \
       "as it must be"
else
  echo "   FAIL: deadlock_2015.pml was not rejected with a deadlock"
fi

# ---------------------------------------------------------------------------- vacuity
vac=""
if [ "$vacuity" = 1 ]; then
  echo
  echo "== vacuity: every REACH(n, ...) event of dying.pml must happen in some run"
  n_marks=$(grep -o 'REACH([0-9]*,' "$here/dying.pml" | sort -u | wc -l)
  for n in $(seq 1 "$n_marks"); do
    launch "reach_$n" dying.pml "-DREACH_TEST=$n" "-DSAFETY -DNOCLAIM" "" &
    if [ "$(jobs -rp | wc -l)" -ge 2 ]; then wait -n; fi
  done
  wait
  reached=0
  for n in $(seq 1 "$n_marks"); do
    desc=$(grep -m1 "REACH($n," "$here/dying.pml" | sed -n 's|.*/\* *\(.*\) \*/.*|\1|p')
    if built "reach_$n" && grep -q 'assertion violated' "$work/reach_$n/pan.out"; then
      reached=$((reached + 1))
      depth=$(sed -n 's/.*assertion violated.*(at depth \([0-9]*\)).*/\1/p' \
              "$work/reach_$n/pan.out" | head -1)
      echo "   $n reached (depth $depth): ${desc:-?}"
    else
      echo "   $n NOT reached: ${desc:-?}"
    fi
  done
  vac=" (vacuity: $reached of $n_marks events reached)"
  [ "$reached" = "$n_marks" ] || dying_ok=0
fi

passed=$((dying_ok + bug_ok))
failed=$((2 - passed))
if [ "$failed" != 0 ] && [ "$keep" = 0 ]; then
  trap - EXIT
  echo "(work directory kept for inspection: $work)"
fi
echo
echo "total time: $(( $(date +%s) - start_all )) s"
echo "model: $passed passed, $failed failed$vac"
[ "$failed" = 0 ]
