#!/usr/bin/env bash
# The README's quick start as a newcomer runs it, on this checkout:
# `make run` in the background, 20 chat requests, then — without stopping
# the gateway — `routelab logs inspect --json` must count every request
# within 10 s and `routelab replay` must succeed on the same logs.
# Loopback only; bounded in time; cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ADDR=127.0.0.1:8080
work=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill -- -"$pid" 2>/dev/null || true
	[ -n "$pid" ] && wait "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

if curl -s -o /dev/null "http://$ADDR/healthz"; then
	echo "newcomer: something already listens on $ADDR" >&2
	exit 1
fi
make -s build
# make run in its own process group (so cleanup stops make and the
# gateway), logging to a scratch directory instead of this checkout's ./data.
setsid make -s run RUN_FLAGS="--log-dir $work/data/decisions" >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	curl -s -o /dev/null "http://$ADDR/healthz" && break
	sleep 0.1
done
ok=0
for i in $(seq 20); do
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://$ADDR/v1/chat/completions" \
		-H 'Content-Type: application/json' \
		-d "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"newcomer request $i\"}]}")
	[ "$code" = 200 ] && ok=$((ok + 1))
done
echo "newcomer: $ok/20 chat requests answered 200"
[ "$ok" = 20 ] || { cat "$work/serve.log" >&2; exit 1; }

t0=$(date +%s)
rows=0
while [ $(( $(date +%s) - t0 )) -le 10 ]; do
	rows=$(./bin/routelab logs inspect --json "$work/data/decisions" 2>/dev/null |
		sed -n 's/^  "rows": \([0-9]*\),$/\1/p' || true)
	[ "${rows:-0}" -ge 20 ] && break
	sleep 1
done
echo "newcomer: logs inspect counts ${rows:-0} rows after $(( $(date +%s) - t0 )) s (gateway still running)"
[ "${rows:-0}" -ge 20 ] || exit 1
./bin/routelab replay --logs "$work/data/decisions" --policy random >/dev/null
echo "newcomer: replay succeeded on the live logs"
kill -0 "$pid" || { echo "newcomer: the gateway died" >&2; exit 1; }
echo "newcomer: ok"
