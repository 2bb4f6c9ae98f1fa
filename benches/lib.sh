# Shared by the load benchmark scripts (source it after `cd` to the repository root):
# a temporary folder removed on exit with the simulator, CPU pinning, and a simulator start.

cargo build --release --quiet --bin hookbench
tmp=$(mktemp -d)
sim_pid=
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

# Runs a command on one CPU (exec: the pid stays the command's) when there are two or more.
pin() { if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }

# The taskset prefix for CPU 1, empty on one core.
on1=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then on1=(taskset -c 1); fi

# start_sim [SIM ARGS…]: the simulator on CPU 0; sets sim_pid, url, id, secret and base, and
# exports the client credentials for the scenarios' auth:.
start_sim() {
  pin 0 target/release/hookbench sim --listen 127.0.0.1:0 --print-config json --log error "$@" >"$tmp/sim.json" &
  sim_pid=$!
  for _ in $(seq 100); do [ -s "$tmp/sim.json" ] && break; sleep 0.1; done
  read -r url id secret base < <(python3 -c 'import json,sys; c=json.loads(open(sys.argv[1]).readline()); print(c["instances"][0]["v2_url"], c["client_id"], c["client_secret"], c["base_url"])' "$tmp/sim.json")
  export HOOKBENCH_CLIENT_ID=$id HOOKBENCH_CLIENT_SECRET=$secret
}
