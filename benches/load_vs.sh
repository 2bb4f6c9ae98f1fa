#!/usr/bin/env bash
# hookbench against oha and wrk, in one run on this machine: the same V2 request with the same
# token against the same simulator process, with hookbench's checks on. Prints requests per
# second and generator CPU time per request for each tool, and hookbench's ratios to the others;
# then hookbench again with a new user (token, identity, session) every conversation, the
# realistic capacity-test case, and its CPU per turn against the fixed user's.
#
# Last, the fixed and the new-user scenario again with a 4 ms think per conversation (closed
# model, the same 64 users): both then run at about the same rate, so their CPU per turn
# compares the work of a new identity without the simulator slowing one run more than the
# other. (Not the open model: there every conversation starts with no user state, so a
# "fixed" user signs a token per conversation too.)
#
#   benches/load_vs.sh                   # 10 s each, 64 connections/users
#   DURATION=20 CONNS=128 benches/load_vs.sh
#
# The simulator is pinned to CPU 0 and each generator to CPU 1 (2-core machine). oha is used
# when installed (`cargo install oha`); wrk is installed with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
. benches/lib.sh
start_sim
token=$(target/release/hookbench token --user bench --client-id "$id" --client-secret "$secret" --expires-in 2h)
body='{"message":{"type":"text","val":"balance"},"from":{"id":"bench"},"to":{"id":"x"}}'

# Generators run on CPU 1 under /usr/bin/time, which records their user+system CPU seconds.
timed() { /usr/bin/time -f "%U %S" -o "$tmp/time" "${on1[@]}" "$@"; }
cpu() { awk '{print $1 + $2}' "$tmp/time"; }

results=()
# wrk
cat >"$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.body   = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "bearer $token"
LUA
timed wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$tmp/post.lua" "$url" >"$tmp/wrk.out"
n=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
results+=("wrk $n $(cpu)")
# oha
if command -v oha >/dev/null; then
  timed oha -z "${DURATION}s" -c "$CONNS" --no-tui --output-format json -m POST -H "Authorization: bearer $token" -H "Content-Type: application/json" -d "$body" "$url" >"$tmp/oha.json"
  n=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(d["statusCodeDistribution"].values()))' "$tmp/oha.json")
  results+=("oha $n $(cpu)")
fi
# hookbench, checks on: one fixed user per virtual user, then a new user every conversation
timed target/release/hookbench run benches/scenarios/one-step.yaml --users "$CONNS" --duration "${DURATION}s" --grace 5s --quiet --target "$url" --out "$tmp/hb" >/dev/null || true
n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["turns"])' "$tmp/hb/results.json")
results+=("hookbench $n $(cpu)")
timed target/release/hookbench run benches/scenarios/one-step-new-user.yaml --users "$CONNS" --duration "${DURATION}s" --grace 5s --quiet --target "$url" --out "$tmp/hbnew" >/dev/null || true
n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["turns"])' "$tmp/hbnew/results.json")
results+=("hb-newuser $n $(cpu)")

for s in one-step-think one-step-new-user-think; do
  timed target/release/hookbench run "benches/scenarios/$s.yaml" --users "$CONNS" --duration "${DURATION}s" --grace 5s --quiet --target "$url" --out "$tmp/$s" >/dev/null || true
  n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["turns"])' "$tmp/$s/results.json")
  results+=("$s $n $(cpu)")
done

python3 - "$DURATION" "${results[@]}" <<'PY'
import sys
dur = float(sys.argv[1])
rows = [r.split() for r in sys.argv[2:]]
stats = {name: (int(n) / dur, float(cpu) * 1e6 / max(int(n), 1)) for name, n, cpu in rows}
print(f'{"tool":<24} {"req/s":>10} {"CPU µs/req":>11}')
for name, (rps, cpu) in stats.items():
    print(f'{name:<24} {rps:>10.0f} {cpu:>11.1f}')
hb = stats["hookbench"]
new = stats.get("hb-newuser")
for other in ("oha", "wrk"):
    if other in stats:
        o = stats[other]
        print(f'hookbench/{other}: throughput x{hb[0] / o[0]:.2f}, CPU per request x{hb[1] / o[1]:.2f} (lower is better)')
        if new:
            print(f'hookbench new users/{other}: throughput x{new[0] / o[0]:.2f}, CPU per request x{new[1] / o[1]:.2f}')
if new:
    print(f'new identity each conversation / fixed user: CPU per turn x{new[1] / hb[1]:.2f} (goal: at most x1.15), throughput x{new[0] / hb[0]:.2f}')
tf, tn = stats.get("one-step-think"), stats.get("one-step-new-user-think")
if tf and tn:
    print(f'with a 4 ms think ({tf[0]:.0f} and {tn[0]:.0f} turns/s): new identity / fixed user CPU per turn x{tn[1] / tf[1]:.2f} (goal: at most x1.15)')
PY
