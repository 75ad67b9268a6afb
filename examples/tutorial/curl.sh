#!/usr/bin/env bash
# The tutorial's checks with curl: missing header → 401, wrong secret → 403 (tutorial mode) or 401
# (default mode), valid → tools/list answered. Exits non-zero if any answer differs.
# Usage: PORT=8080 TUTORIAL_MODE=1 bash examples/tutorial/curl.sh
set -u
url="http://127.0.0.1:${PORT:-8080}/mcp"
mode="${TUTORIAL_MODE:-1}"
body='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
if [ "$mode" = "0" ]; then scheme='Bearer '; wrong_status=401; else scheme=''; wrong_status=403; fi
failures=0

check() { # name expected-status curl-args...
  local name=$1 expected=$2; shift 2
  local status
  status=$(curl -s -o /tmp/mcp-warden-curl.$$ -w '%{http_code}' -X POST "$url" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' --data "$body" "$@")
  if [ "$status" = "$expected" ]; then echo "ok   $name → $status"; else echo "FAIL $name → $status (expected $expected)"; failures=$((failures + 1)); fi
  head -c 300 /tmp/mcp-warden-curl.$$; echo
  rm -f /tmp/mcp-warden-curl.$$
}

check "no Authorization header" 401
check "wrong secret" "$wrong_status" -H "Authorization: ${scheme}wrong-secret"
check "valid secret" 200 -H "Authorization: ${scheme}secret123"
check "reader token" 200 -H "Authorization: ${scheme}reader-token"
exit $failures
