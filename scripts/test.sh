#!/usr/bin/env bash
# Builds and runs every test project against the real services (started here when they are not
# running) and ends with one line: N passed, N failed, N skipped.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

prepare

RESULTS="$ROOT/artifacts/test-results"
rm -rf "$RESULTS" && mkdir -p "$RESULTS"
status=0
dotnet test "$ROOT/Async.Serving.sln" -c "$CONFIGURATION" --no-build -nologo \
  --logger "trx" --logger "console;verbosity=normal" --results-directory "$RESULTS" || status=$?

passed=0 failed=0 skipped=0 files=0
for trx in "$RESULTS"/*.trx; do
  [ -f "$trx" ] || continue
  files=$((files + 1))
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  get() { printf '%s' "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*' || echo 0; }
  passed=$((passed + $(get passed)))
  failed=$((failed + $(get failed) + $(get error) + $(get timeout) + $(get aborted)))
  skipped=$((skipped + $(get notExecuted)))
done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi # a test host that crashed before writing results
[ "$files" -gt 0 ] || { failed=$((failed + 1)); log "no test results were written"; }
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
