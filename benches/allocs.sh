#!/usr/bin/env bash
# Heap allocations per turn, simulator and generator, for a fixed user and for a new user every
# conversation: a uprobe on libc's malloc (`perf probe`, root), counted with `perf stat` over a
# 4 s run of 64 users. The probes slow the run; the counts per turn are what matter.
#
#   benches/allocs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
libc=$(ldd target/release/hookbench | awk '/libc.so/ {print $3}')
perf probe -q -x "$libc" malloc 2>/dev/null || true
B=target/release/hookbench
start_sim
for sc in one-step one-step-new-user; do
  perf stat -e probe_libc:malloc -p $sim_pid -o "$tmp/sim.$sc" -- sleep 5 &
  ps=$!
  "${on1[@]}" perf stat -e probe_libc:malloc -o "$tmp/gen.$sc" $B run benches/scenarios/$sc.yaml --users 64 --duration 4s --grace 2s --quiet --target "$url" --out "$tmp/$sc" >/dev/null 2>&1 || true
  wait $ps || true
  turns=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["turns"])' "$tmp/$sc/results.json")
  sm=$(awk '/probe_libc:malloc/ {gsub(",","",$1); print $1}' "$tmp/sim.$sc")
  gm=$(awk '/probe_libc:malloc/ {gsub(",","",$1); print $1}' "$tmp/gen.$sc")
  python3 -c "t=$turns; print('$sc', 'turns', t, 'sim mallocs/turn %.1f' % ($sm/t), 'gen mallocs/turn %.1f' % ($gm/t))"
done
