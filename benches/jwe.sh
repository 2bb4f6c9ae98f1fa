#!/usr/bin/env bash
# JWE under load: the same V2 turn with tokens encrypted to the bot's key (RSA-OAEP-256 +
# A256GCM), a fixed user per virtual user (one encryption per user, then the cached token) and
# a new user every conversation (one encryption on the generator and one RSA decryption on the
# simulator per conversation). Simulator on CPU 0, generator on CPU 1; turns per second and
# CPU per turn of each, from the results and /usr/bin/time.
#
#   benches/jwe.sh                      # DURATION=8 USERS=64
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8}
USERS=${USERS:-64}
. benches/lib.sh
start_sim
for s in jwe-fixed jwe-new-user; do
  /usr/bin/time -f "%U %S" -o "$tmp/time" "${on1[@]}" target/release/hookbench run "benches/scenarios/$s.yaml" --users "$USERS" --duration "${DURATION}s" --grace 5s --quiet --target "$url" --out "$tmp/$s" >/dev/null || true
  python3 - "$tmp/$s/results.json" "$tmp/time" "$s" "$DURATION" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); cpu = sum(map(float, open(sys.argv[2]).read().split()))
turns = r["counts"]["turns"]; failed = r["counts"]["turns_failed"]
print(f'{sys.argv[3]:<14} {turns / float(sys.argv[4]):>9.0f} turns/s  {cpu * 1e6 / max(turns, 1):>7.1f} µs generator CPU per turn  ({failed} failed)')
PY
done
