#!/usr/bin/env bash
# docs/cli.md and the programs' --help tell the same contract: every flag that distd --help
# or distctl [COMMAND] --help lists is in docs/cli.md, every command has its section there,
# and every exit code distctl --help names is in its table.
# Usage: cli_doc_test.sh BIN_DIR DOC
set -uo pipefail
bin=$1
doc=$2
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# The flags of a help text: the options of its usage lines and of its indented flag lines.
flags_of() {
  {
    grep -E '^(usage: |       )(distd|distctl)' <<<"$1" | grep -oE '\[-{1,2}[A-Za-z][-A-Za-z0-9]*' | tr -d '['
    grep -E '^  +-' <<<"$1" | sed -E 's/^ +//; s/  .*//' | grep -oE '(^|[ ,|])-{1,2}[A-Za-z][-A-Za-z0-9]*' |
      sed -E 's/^[ ,|]//'
  } | sort -u
}

in_doc() {
  grep -qE -- "(^|[^-A-Za-z0-9])$1([^-A-Za-z0-9]|$)" "$doc"
}

# check_help WHAT TEXT [MIN]: each flag of TEXT is in the doc, and there are at least MIN.
check_help() {
  local what=$1 text=$2 min=${3:-1} n=0
  [ -n "$text" ] || fail "$what --help printed nothing"
  while read -r flag; do
    [ -n "$flag" ] || continue
    n=$((n + 1))
    in_doc "$flag" || fail "$what --help lists $flag, docs/cli.md does not"
  done < <(flags_of "$text")
  [ "$n" -ge "$min" ] || fail "$what --help: no flags found (has its format changed?)"
  echo "$what: $n flags in docs/cli.md"
}

check_help distd "$("$bin/distd" --help 2>&1)"
main_help=$("$bin/distctl" --help 2>&1)
check_help distctl "$main_help"
commands=$(sed -n '/^commands:/,/^$/p' <<<"$main_help" | grep -oE '^  [a-z]+' | tr -d ' ' | sort -u | grep -v '^help$')
[ -n "$commands" ] || fail "distctl --help lists no commands"
for cmd in $commands; do
  grep -qE "^### $cmd\$" "$doc" || fail "docs/cli.md has no section for distctl $cmd"
  text=$("$bin/distctl" "$cmd" --help 2>&1)
  check_help "distctl $cmd" "$text" 0
  # A command's own subcommands (build list, build close NAME) are in the doc as its usage
  # gives them.
  while read -r usage; do
    grep -qF -- "$usage" "$doc" || fail "distctl $cmd --help: '$usage' is not in docs/cli.md"
  done < <(grep -oE "distctl $cmd [a-z]+( [A-Z]+)?\$" <<<"$text")
done

codes=$(sed -n '/^exit codes:/,/^$/p' <<<"$main_help" | grep -oE '\b[0-9]{1,3}\b' | sort -un)
[ -n "$codes" ] || fail "distctl --help names no exit codes"
for code in $codes; do
  if [ "$code" = 128 ]; then
    grep -qE '^\| 128\+N \|' "$doc" || fail "exit code 128+N is not in docs/cli.md's table"
  else
    grep -qE "^\| $code \|" "$doc" || fail "exit code $code is not in docs/cli.md's table"
  fi
done
echo "exit codes: $(echo $codes) in docs/cli.md"

# Nothing in the repository's docs points outside it.
if grep -nE '\.\./|PRODUCT\.md' "$doc" "$(dirname "$doc")/design.md"; then
  fail "the docs cite files outside the repository"
fi

[ "$failures" -eq 0 ] || exit 1
echo "docs.cli: passed"
