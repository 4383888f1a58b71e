#!/usr/bin/env bash
# bench/run.sh — caddy-dane vs stock Caddy on loopback (issue 5).
#
#   bench/run.sh                 # full run, about 6 minutes
#   ROUNDS=3 DURATION=3s bench/run.sh
#   bench/run.sh -delv=false     # extra flags go to danebench (see -h)
#
# Builds Caddy from ./cmd/caddy and bench/cmd/danebench, then runs danebench
# pinned to cpu 0 (with wrk, the upstream, the DNS servers); the proxies
# under test run on cpu 1 with GOMAXPROCS=1. Raw results go to
# bench/out/results.json, the summary to stdout. Needs wrk and taskset; the
# delv comparison also needs nsd, unbound and delv (bind9-dnsutils).
# Everything listens on 127.0.0.1 only; every process started is stopped on
# exit (danebench kills its children; the trap covers the rest).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
mkdir -p "$out"
pids=()
trap 'for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done' EXIT INT TERM

for tool in wrk taskset; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || echo "run.sh: warning: fewer than 2 cpus, proxy and load share a core" >&2

go build -o "$out/caddy" ./cmd/caddy
go build -o "$out/danebench" ./bench/cmd/danebench

echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), go $(go env GOVERSION)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
timeout 900 taskset -c 0 "$out/danebench" -caddy "$out/caddy" \
	-rounds "${ROUNDS:-6}" -duration "${DURATION:-3s}" -conns "${CONNS:-32}" \
	-json "$out/results.json" "$@" &
pids+=($!)
wait "${pids[0]}"
