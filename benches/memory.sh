#!/usr/bin/env bash
# Resident memory of the load generator with 10,000 / 50,000 / 100,000 concurrent users, nearly
# all of them thinking. The simulator runs as its own process so only the generator is
# measured. Prints one line per size: users, peak RSS (MiB), KiB per user, turns.
#
#   benches/memory.sh                 # 10000 50000 100000
#   SIZES="10000" benches/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"10000 50000 100000"}
cargo build --release --quiet --bin hookbench
tmp=$(mktemp -d)
sim_pid=
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ulimit -n 20000 2>/dev/null || true
target/release/hookbench sim --listen 127.0.0.1:0 --print-config json --log error >"$tmp/sim.json" &
sim_pid=$!
for _ in $(seq 100); do [ -s "$tmp/sim.json" ] && break; sleep 0.1; done
read -r url id secret < <(python3 -c 'import json,sys; c=json.loads(open(sys.argv[1]).readline()); print(c["instances"][0]["v2_url"], c["client_id"], c["client_secret"])' "$tmp/sim.json")
printf '%-8s %10s %12s %10s\n' users rss_mib kib_per_user turns
for n in $SIZES; do
  USERS=$n RAMP=${RAMP:-20s} target/release/hookbench run benches/scenarios/thinking.yaml --quiet \
    --target "$url" --client-id "$id" --client-secret "$secret" --out "$tmp/run-$n" >/dev/null || true
  python3 - "$tmp/run-$n/results.json" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
rss = r["generator"]["max_rss_mib"]
print(f'{n:<8} {rss:>10.0f} {rss * 1024 / n:>12.1f} {r["counts"]["turns"]:>10}')
PY
done
