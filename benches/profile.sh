#!/usr/bin/env bash
# Where the CPU goes, per request: a `perf record` of the simulator or of the generator while
# hookbench drives one of the load-benchmark scenarios against the simulator (pinned as in
# load_vs.sh), then the flat profile (self time per symbol) with each symbol's share turned into
# microseconds per request from the measured rate and CPU time.
#
#   benches/profile.sh                                  # simulator, new user each conversation
#   SCENARIO=one-step benches/profile.sh                # simulator, fixed user
#   WHO=generator SCENARIO=one-step-new-user benches/profile.sh
#   TOP=60 DURATION=8 benches/profile.sh
#   KEEP=/tmp/new.data benches/profile.sh               # keep perf.data for `perf report -i`
#
# Run it for both scenarios and compare the rows: the difference is what a new user costs.
# Needs `perf` (Debian's linux-perf); the machine may only have software clocks (cpu-clock),
# which is what this samples.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-6}
CONNS=${CONNS:-64}
SCENARIO=${SCENARIO:-one-step-new-user}
WHO=${WHO:-sim}
TOP=${TOP:-40}
command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 1; }
. benches/lib.sh
start_sim

gen=(target/release/hookbench run "benches/scenarios/$SCENARIO.yaml" --users "$CONNS"
  --duration "${DURATION}s" --grace 5s --quiet --target "$url" --out "$tmp/out")
if [ "$WHO" = sim ]; then
  sim_cpu0=$(awk '{print $14 + $15}' "/proc/$sim_pid/stat")
  perf record -q -F 4000 -g -p "$sim_pid" -o "$tmp/perf.data" -- sleep "$DURATION" 2>/dev/null &
  rec=$!
  "${on1[@]}" "${gen[@]}" >/dev/null || true
  wait "$rec" || true
  sim_cpu1=$(awk '{print $14 + $15}' "/proc/$sim_pid/stat")
  cpu_s=$(python3 -c "import os,sys; print((int(sys.argv[2]) - int(sys.argv[1])) / os.sysconf('SC_CLK_TCK'))" "$sim_cpu0" "$sim_cpu1")
else
  /usr/bin/time -f "%U %S" -o "$tmp/time" "${on1[@]}" perf record -q -F 4000 -g -o "$tmp/perf.data" -- "${gen[@]}" >/dev/null 2>&1 || true
  cpu_s=$(awk '{print $1 + $2}' "$tmp/time")
fi
[ -n "${KEEP:-}" ] && cp "$tmp/perf.data" "$KEEP"
turns=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["turns"])' "$tmp/out/results.json")
echo "$WHO, $SCENARIO: $turns turns in ${DURATION}s, $cpu_s CPU s, $(python3 -c "print(f'{$cpu_s * 1e6 / max($turns, 1):.2f}')") µs per turn"
perf report -i "$tmp/perf.data" --no-children --sort symbol --stdio -g none --percent-limit 0.3 2>/dev/null \
  | grep -E '^ +[0-9]' | head -n "$TOP" \
  | python3 -c "
import sys
per = $cpu_s * 1e6 / max($turns, 1)
for line in sys.stdin:
    pct, rest = line.split('%', 1)
    print(f'{float(pct):6.2f}%  {float(pct) * per / 100:6.2f} µs  {rest.strip()[:110]}')
" || true  # head closes the pipe early
# The same samples by layer: kernel, allocator, and the crates on the request path.
perf report -i "$tmp/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
  | grep -E '^ +[0-9]' | python3 -c "
import re, sys
per = $cpu_s * 1e6 / max($turns, 1)
layers = [('kernel', r'\[k\]'), ('allocator', r'malloc|_int_free|cfree|realloc|unlink_chunk|consolidate|tcache'),
          ('memcpy', r'memmove|memcpy|memset|memcmp'),
          ('axum/tower', r'axum|tower|matchit'), ('hyper/http', r'hyper|httparse|http::'),
          ('tokio', r'tokio|mio'), ('serde_json', r'serde_json|serde::'),
          ('crypto', r'sha2|hmac|base64|siphash|sip::|aes|rsa'),
          ('hookbench', r'hookbench'), ('bytes', r'bytes::')]
sums = {}
for line in sys.stdin:
    pct = float(line.split('%', 1)[0])
    name = next((n for n, rx in layers if re.search(rx, line)), 'other')
    sums[name] = sums.get(name, 0.0) + pct
print('by layer:')
for name, pct in sorted(sums.items(), key=lambda kv: -kv[1]):
    print(f'{pct:6.2f}%  {pct * per / 100:6.2f} µs  {name}')
"
