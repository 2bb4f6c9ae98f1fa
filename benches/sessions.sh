#!/usr/bin/env bash
# Simulator memory for many distinct users within one session_idle: a new user every
# conversation (benches/scenarios/one-step-new-user.yaml) until USERS conversations, all
# sessions kept alive (--session-idle 1h), then the simulator's peak resident memory, its live
# sessions and the memory per live session.
#
#   benches/sessions.sh                 # USERS=1000000, 64 generator users
#   USERS=200000 benches/sessions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-1000000}
cargo build --release --quiet --bin hookbench
tmp=$(mktemp -d)
sim_pid=
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
pin() { if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }

pin 0 target/release/hookbench sim --listen 127.0.0.1:0 --print-config json --log error --session-idle 1h >"$tmp/sim.json" &
sim_pid=$!
for _ in $(seq 100); do [ -s "$tmp/sim.json" ] && break; sleep 0.1; done
read -r url id secret base < <(python3 -c 'import json,sys; c=json.loads(open(sys.argv[1]).readline()); print(c["instances"][0]["v2_url"], c["client_id"], c["client_secret"], c["base_url"])' "$tmp/sim.json")
export HOOKBENCH_CLIENT_ID=$id HOOKBENCH_CLIENT_SECRET=$secret
rss() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$sim_pid/status"; }
before=$(rss VmRSS)
start=$(date +%s.%N)
on1=(); if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then on1=(taskset -c 1); fi
"${on1[@]}" target/release/hookbench run benches/scenarios/one-step-new-user.yaml --users 64 \
  --iterations "$USERS" --duration 1h --grace 5s --quiet --target "$url" --out "$tmp/run" >/dev/null || true
took=$(python3 -c "import time; print(time.time() - $start)")
sessions=$(curl -s "$base/metrics" | awk '$1 == "hookbench_sim_active_sessions" {print $2}')
peak=$(rss VmHWM)
python3 - "$USERS" "$before" "$peak" "$sessions" "$took" <<'PY'
import sys
users, before, peak, sessions, took = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
print(f"conversations {users}, live sessions {sessions:.0f}, {took:.1f} s ({users / took:.0f}/s)")
print(f"simulator resident memory: {before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB")
print(f"per live session: {(peak - before) * 1024 / max(sessions, 1):.0f} bytes")
PY
