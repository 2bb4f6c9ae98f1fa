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
. benches/lib.sh
start_sim --session-idle 1h
rss() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$sim_pid/status"; }
before=$(rss VmRSS)
start=$(date +%s.%N)
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
