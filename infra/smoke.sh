#!/usr/bin/env bash
# infra/smoke.sh URL: check a live deployment: /readyz, then stream one answer and time
# its events as they arrive through the platform's proxy.
#
# /api/chat needs a signed-in session: sign in in a browser, copy the `ragship_session`
# cookie's value and pass it as RAGSHIP_SESSION (it is never printed). Without it, only
# /healthz and /readyz are checked.
set -euo pipefail

URL="${1:?usage: infra/smoke.sh https://chat.example.com}"
URL="${URL%/}"
QUESTION="${QUESTION:-How do I deploy ragship?}"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

printf 'healthz: '
curl -fsS --max-time 10 "$URL/healthz" && echo
printf 'readyz:  '
curl -fsS --max-time 10 "$URL/readyz" && echo

if [ -z "${RAGSHIP_SESSION:-}" ]; then
  echo "RAGSHIP_SESSION not set: skipping the streamed answer"
  exit 0
fi

jar="$(mktemp)"
trap 'rm -f "$jar"' EXIT
printf '%s\tFALSE\t/\tTRUE\t0\tragship_session\t%s\n' "${URL#https://}" "$RAGSHIP_SESSION" >"$jar"
csrf="$(curl -fsS -b "$jar" "$URL/api/me" | python3 -c 'import json, sys; print(json.load(sys.stdin)["csrf_token"])')"
body="$(QUESTION="$QUESTION" python3 -c 'import json, os; print(json.dumps({"message": os.environ["QUESTION"]}))')"

start="$(now)"
count=0
first=""
while IFS= read -r line; do
  case "$line" in
    event:*)
      count=$((count + 1))
      at="$(now)"
      [ -n "$first" ] || first="$at"
      printf '%8ss  %s\n' "$(since "$start" "$at")" "${line#event: }"
      ;;
  esac
done < <(curl -fsS -N --max-time 200 -b "$jar" -H "X-CSRF-Token: $csrf" \
  -H 'Content-Type: application/json' -d "$body" "$URL/api/chat")

[ "$count" -gt 0 ] || { echo "no events received" >&2; exit 1; }
echo "$count events; first after $(since "$start" "$first") s, all after $(since "$start" "$(now)") s"
