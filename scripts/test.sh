#!/usr/bin/env bash
# Builds and runs every test project against the real services (started here when they are not
# running) and ends with one line: N passed, N failed, N skipped. The run has its own RabbitMQ virtual
# host, Redis database and PostgreSQL database (dropped at the end), so it passes with the stack of
# scripts/up.sh running and beside another test run. Arguments go to dotnet test, for example
# scripts/test.sh --filter 'FullyQualifiedName~WebhookTests'.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Debian packages only the tests need (judges such as a browser or a metrics linter).
# chromium: the dashboard's browser test (DashboardBrowserTests); prometheus: promtool, for the metrics
# and alert rules tests (MetricsTests).
TEST_PACKAGES=(chromium prometheus)
prepare "${TEST_PACKAGES[@]}"
npm_tools openapi "the OpenAPI document's judges"
npm_tools k8s "the Kubernetes manifests' schema checks"
fetch_ocr_eval_images # real photographs and scans for the OCR tests (Debian python3-skimage)
fetch_test_photos     # real photographs for the preprocessing tests (the same package)
isolated_env test

# Prints each failed test of a .trx file with the first lines of its message and stack trace.
failed_tests() {
  awk '
    function unescape(s) {
      gsub(/&lt;/, "<", s); gsub(/&gt;/, ">", s); gsub(/&quot;/, "\"", s)
      gsub(/&apos;/, "\047", s); gsub(/&#xD;/, "", s); gsub(/&#xA;/, " ", s); gsub(/&amp;/, "\\&", s)
      return s
    }
    /<UnitTestResult / {
      failing = $0 ~ /outcome="(Failed|Error|Timeout|Aborted)"/
      if (failing) { match($0, /testName="[^"]*"/); print "FAILED " unescape(substr($0, RSTART + 10, RLENGTH - 11)) }
      section = ""; lines = 0
    }
    failing && /<Message>/ { section = "message"; lines = 0 }
    failing && /<StackTrace>/ { section = "stack"; lines = 0 }
    failing && section != "" {
      line = $0; gsub(/<\/?(Message|StackTrace)>/, "", line); sub(/^[ \t]+/, "", line)
      if (line ~ /[^ \t]/ && lines < (section == "message" ? 12 : 6)) { print "    " unescape(line); lines++ }
      if ($0 ~ /<\/(Message|StackTrace)>/) section = ""
    }
    /<\/UnitTestResult>/ { failing = 0; section = "" }
  ' "$1"
}

RESULTS="$ROOT/artifacts/test-results"
rm -rf "$RESULTS" && mkdir -p "$RESULTS"
status=0
dotnet test "$ROOT/Async.Serving.sln" -c "$CONFIGURATION" --no-build -nologo \
  --logger "trx" --logger "console;verbosity=normal" --results-directory "$RESULTS" "$@" || status=$?

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
# The failed tests again, with their messages, just above the summary line: CI shows only the tail.
for trx in "$RESULTS"/*.trx; do
  [ -f "$trx" ] && failed_tests "$trx"
done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi # a test host that crashed before writing results

# --- Fault suite (scripts/chaos.sh --reduced, docs/chaos.md): one more test in the summary line. ---
# It runs a stack of its own (about 3-4 minutes on 2 cores). A run with arguments (a filter) leaves it
# out, and so does SERVING_SKIP_CHAOS=1; CI runs test.sh without either.
if [ $# -eq 0 ] && [ "${SERVING_SKIP_CHAOS:-0}" != 1 ]; then
  log "fault suite: scripts/chaos.sh --reduced (log: $RESULTS/chaos.log)"
  if bash "$ROOT/scripts/chaos.sh" --reduced --no-build >"$RESULTS/chaos.log" 2>&1 4>&-; then
    passed=$((passed + 1)); grep '^chaos:' "$RESULTS/chaos.log" | tail -1
  else
    failed=$((failed + 1)); echo "FAILED scripts/chaos.sh --reduced"; tail -25 "$RESULTS/chaos.log" | sed 's/^/    /'
  fi
fi
# --- end of the fault suite ---
# --- Multi-host check (scripts/multihost.sh, docs/deployment.md): one more test in the summary line. ---
# 1.5 to 6 minutes on 2 cores (docs/deployment.md). A run with arguments (a filter) leaves it out, and
# so does SERVING_SKIP_MULTIHOST=1; CI runs test.sh without either.
if [ $# -eq 0 ] && [ "${SERVING_SKIP_MULTIHOST:-0}" != 1 ]; then
  log "multi-host check: scripts/multihost.sh (log: $RESULTS/multihost.log)"
  if bash "$ROOT/scripts/multihost.sh" --no-build >"$RESULTS/multihost.log" 2>&1 4>&-; then
    passed=$((passed + 1)); grep '^multihost:' "$RESULTS/multihost.log" | tail -1
  else
    failed=$((failed + 1)); echo "FAILED scripts/multihost.sh"; tail -25 "$RESULTS/multihost.log" | sed 's/^/    /'
  fi
fi
[ "$files" -gt 0 ] || { failed=$((failed + 1)); log "no test results were written"; }
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
