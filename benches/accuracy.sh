#!/usr/bin/env bash
# Measurement accuracy:
#  1. against a simulator instance that adds a fixed 50 ms, the reported median turn latency
#     should lie within 1.5 ms of 50 ms;
#  2. against a target that stalls for 2 seconds (the simulator process is paused with SIGSTOP),
#     the open model's latency from the intended start should show the stall at p99, where a
#     closed-model tool would hide it (coordinated omission).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin hookbench
tmp=$(mktemp -d)
sim_pid=
cleanup() { [ -n "$sim_pid" ] && kill -CONT "$sim_pid" 2>/dev/null; [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
target/release/hookbench sim --bot benches/bots/latency.bot.yaml --listen 127.0.0.1:0 --print-config json --log error >"$tmp/sim.json" &
sim_pid=$!
for _ in $(seq 100); do [ -s "$tmp/sim.json" ] && break; sleep 0.1; done
read -r fixed plain < <(python3 -c 'import json,sys; c=json.loads(open(sys.argv[1]).readline()); i={x["id"]: x["v2_url"] for x in c["instances"]}; print(i["fixed50"], i["default"])' "$tmp/sim.json")

ACCURACY_URL=$fixed target/release/hookbench run benches/scenarios/accuracy.yaml --users 20 --duration 10s --quiet --out "$tmp/fixed" >/dev/null
python3 - "$tmp/fixed/results.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["distributions"]["turn"]
ok = abs(d["p50"] - 50.0) <= 1.5
print(f'fixed 50 ms: median {d["p50"]:.2f} ms, p99 {d["p99"]:.2f} ms over {d["count"]} turns -> {"within" if ok else "NOT within"} 1.5 ms')
PY

ACCURACY_URL=$plain target/release/hookbench run benches/scenarios/accuracy.yaml --rate 50/s --duration 10s --grace 10s --quiet --out "$tmp/stall" >/dev/null &
run_pid=$!
sleep 4
kill -STOP "$sim_pid"; sleep 2; kill -CONT "$sim_pid"
wait "$run_pid" || true
python3 - "$tmp/stall/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["distributions"]
turn, conv, intended = r["turn"], r["conversation"], r["conversation_intended"]
print(f'2 s stall, open model 50/s: turn p99 {turn["p99"]:.0f} ms, max {turn["max"]:.0f} ms; '
      f'from intended start p99 {intended["p99"]:.0f} ms, max {intended["max"]:.0f} ms '
      f'-> stall {"visible" if intended["max"] >= 1500 else "NOT visible"}')
PY
