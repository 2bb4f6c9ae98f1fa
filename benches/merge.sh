#!/usr/bin/env bash
# The cost of `hookbench merge`: SHARDS results files of a MINUTES-long run (default 1,000 files
# of a 10-minute run), made from one real run's results (a short run of scenarios/transfer.yaml against the
# embedded simulator) with its time series stretched to one point per second of the run and
# its histograms kept. Prints the merge's wall time, CPU time and peak memory, and the same for
# a tenth of the files: memory holds one shard at a time plus the merged result, so it should
# barely grow with the number of files.
#
#   benches/merge.sh                  # SHARDS=1000 MINUTES=10
set -euo pipefail
cd "$(dirname "$0")/.."
SHARDS=${SHARDS:-1000}
MINUTES=${MINUTES:-10}
cargo build --release --quiet --bin hookbench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
target/release/hookbench run scenarios/transfer.yaml --users 8 --duration 3s --grace 5s --quiet \
  --run-id bench-merge --out "$tmp/one" >/dev/null 2>&1 || true
python3 - "$tmp/one/results.json" "$tmp" "$SHARDS" "$MINUTES" <<'PY'
import json, sys, os
src, out, shards, minutes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
doc = json.load(open(src))
p0 = doc["timeseries"][0]
start = doc["run"]["started_unix"]
doc["timeseries"] = [dict(p0, t=float(t), unix=start + t) for t in range(1, minutes * 60 + 1)]
doc["duration_s"] = minutes * 60.0
for n, d in ((shards, "all"), (max(shards // 10, 1), "tenth")):
    os.makedirs(f"{out}/{d}")
    for i in range(n):
        doc["run"]["shard"] = {"index": i, "count": n}
        with open(f"{out}/{d}/shard-{i:04}.json", "w") as f:
            json.dump(doc, f)
size = os.path.getsize(f"{out}/all/shard-0000.json")
print(f"{shards} files of {size/1024:.0f} KiB ({shards*size/2**20:.0f} MiB), {minutes * 60} points each")
PY
for d in tenth all; do
  n=$(ls "$tmp/$d" | wc -l)
  /usr/bin/time -f "%e %U %S %M" -o "$tmp/time" target/release/hookbench merge "$tmp/$d" --out "$tmp/merged-$d" >/dev/null || true
  read -r wall user sys rss <"$tmp/time"
  python3 -c "print(f'merge of {$n:>5} shards: {$wall:.2f} s wall, {$user + $sys:.2f} s CPU, peak {$rss/1024:.0f} MiB')"
done
