#!/usr/bin/env bash
# Measures the simulator's V2 sync throughput next to a minimal axum handler, in one run on
# this machine, and reports the ratio. Goal: the simulator serves at least half the rate of
# the bare handler, so it is never the bottleneck of a load test.
#
#   benches/sim_throughput.sh            # 10 s per target, 64 connections
#   DURATION=30s CONNS=128 benches/sim_throughput.sh
#
# The server is pinned to CPU 0 and wrk to CPU 1 (on a 2-core machine) so the two do not
# fight over the same core. Needs wrk (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}

if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --quiet --bin hookbench --example bare_axum

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

pin() { if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }

pin 0 target/release/hookbench sim --listen 127.0.0.1:0 --print-config json --log error >"$tmp/sim.out" &
pids+=($!)
pin 0 target/release/examples/bare_axum 127.0.0.1:0 >"$tmp/bare.out" &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/sim.out" ] && [ -s "$tmp/bare.out" ] && break; sleep 0.1; done

read -r base bot < <(python3 -c 'import json,sys; c=json.loads(open(sys.argv[1]).readline()); print(c["base_url"], c["bot_id"])' "$tmp/sim.out")
bare=$(head -1 "$tmp/bare.out")
token=$(target/release/hookbench token --user bench --expires-in 2h)

cat >"$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.body   = '{"message":{"type":"text","val":"balance"},"from":{"id":"bench"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "bearer $token"
LUA

run() { # name url
  local out
  out=$(pin 1 wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$tmp/post.lua" "$2")
  local rps; rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  local non2xx; non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  printf '%-10s %12s req/s  non-2xx: %s\n' "$1" "$rps" "${non2xx:-0}" >&2
  echo "$rps"
}

echo "wrk -t$THREADS -c$CONNS -d$DURATION, V2 sync 'balance' (2 messages + task end, JWT verified)" >&2
bare_rps=$(run bare "$bare/chatbot/v2/webhook/$bot")
sim_rps=$(run simulator "$base/chatbot/v2/webhook/$bot")
python3 -c "import sys; s,b=float(sys.argv[1]),float(sys.argv[2]); print(f'ratio simulator/bare: {s/b:.2f} (goal >= 0.50)')" "$sim_rps" "$bare_rps"
