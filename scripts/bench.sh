#!/usr/bin/env bash
# kubefim benchmarks on this machine. Prints markdown tables (copied into docs/benchmarks.md).
#
#   scripts/bench.sh            # everything
#   scripts/bench.sh scan       # init / check against AIDE and b3sum, and the 1M-file RSS check
#   scripts/bench.sh realtime   # latency from a write to its JSON line in standalone mode
#   scripts/bench.sh render     # operator: per-node configuration for 5,000 nodes
#
# Trees are generated under $BENCH_DIR (default /tmp/kubefim-bench) and kept between runs.
# Every timed command runs with a warm page cache (each tree is read once before timing), so the
# figures compare the tools' own work rather than the disk's.
set -euo pipefail
cd "$(dirname "$0")/.."

bench_dir=${BENCH_DIR:-/tmp/kubefim-bench}
what=${1:-all}
mkdir -p "$bench_dir"

export PATH="$(bash scripts/install-tools.sh | tail -n 1):$PATH"
if ! [ -x /usr/bin/time ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
cargo build --release --locked -q -p kubefim-agent
agent=$PWD/target/release/kubefim-agent

# Runs a command, prints "wall_seconds peak_rss_mib" and fails if the command fails with a code
# other than the accepted ones (aide --check and kubefim check exit non-zero on purpose).
measure() {
  local accept=$1; shift
  local out status
  out=$(mktemp)
  set +e
  /usr/bin/time -f "%e %M" -o "$out" "$@" >/dev/null 2>&1
  status=$?
  set -e
  if ! [[ " $accept " == *" $status "* ]]; then
    echo "command failed with $status: $*" >&2
    exit 1
  fi
  awk '{ printf "%.2f %.1f\n", $1, $2 / 1024 }' "$out"
  rm -f "$out"
}

generate_tree() {
  local root=$1 files=$2 bytes=$3
  if [ -f "$root/.complete" ]; then return; fi
  rm -rf "$root"
  python3 - "$root" "$files" "$bytes" <<'PY'
import os, random, sys
root, files, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(42)
average = total // files if files else 0
block = os.urandom(1 << 20)
per_dir = 1000
for i in range(files):
    d = os.path.join(root, f"d{i // per_dir // 100:02d}", f"d{i // per_dir:04d}")
    if i % per_dir == 0:
        os.makedirs(d, exist_ok=True)
    # Sizes spread around the average, a few large ones like real binaries.
    size = 0 if average == 0 else min(len(block), int(random.expovariate(1 / average)))
    with open(os.path.join(d, f"f{i:07d}"), "wb") as f:
        if size:
            start = random.randrange(0, len(block) - size + 1)
            f.write(block[start:start + size])
open(os.path.join(root, ".complete"), "w").close()
PY
}

config_for() {
  local config=$1 algorithm=$2
  cat > "$config" <<YAML
apiVersion: kubefim.dev/v1alpha1
kind: FimWorkspace
metadata: {name: bench}
spec:
  recommended: {enabled: false}
  scan: {hashAlgorithm: $algorithm}
---
apiVersion: kubefim.dev/v1alpha1
kind: MonitoredEntity
metadata: {name: tree}
spec: {workspace: bench, type: LinuxFile, path: /tree, recursive: true, allowBroad: true}
YAML
}

scan_bench() {
  local host=$bench_dir/host100k
  echo "generating 100,000 files (~1 GiB) in $host/tree" >&2
  generate_tree "$host/tree" 100000 $((1024 * 1024 * 1024))
  local files size
  files=$(find "$host/tree" -type f | wc -l)
  size=$(du -sh --apparent-size "$host/tree" | cut -f1)
  find "$host/tree" -type f -print0 | xargs -0 cat > /dev/null   # warm the page cache

  local aide_dir=$bench_dir/aide
  mkdir -p "$aide_dir"
  cat > "$aide_dir/aide.conf" <<CONF
database_in=file:$aide_dir/aide.db
database_out=file:$aide_dir/aide.db.new
gzip_dbout=no
report_url=stdout
FIM = p+i+n+u+g+s+m+c+l+ftype+sha256
$host/tree FIM
CONF
  rm -f "$aide_dir"/aide.db*
  local aide_init aide_check
  aide_init=$(measure "0" aide -c "$aide_dir/aide.conf" --init)
  mv "$aide_dir/aide.db.new" "$aide_dir/aide.db"
  aide_check=$(measure "0" aide -c "$aide_dir/aide.conf" --check)

  local rows=()
  for algorithm in blake3 sha256; do
    config_for "$bench_dir/$algorithm.yaml" "$algorithm"
    rm -rf "$bench_dir/state-$algorithm"
    local init check
    init=$(measure "0" "$agent" init --config "$bench_dir/$algorithm.yaml" --host-root "$host" --state-dir "$bench_dir/state-$algorithm")
    check=$(measure "0" "$agent" check --config "$bench_dir/$algorithm.yaml" --host-root "$host" --state-dir "$bench_dir/state-$algorithm")
    rows+=("$algorithm $init $check")
  done
  local b3
  b3=$(measure "0" bash -c "find '$host/tree' -type f -print0 | xargs -0 b3sum --num-threads 2")

  echo
  echo "Tree: $files files, $size, warm page cache, $(nproc) cores."
  echo
  echo "| tool | init wall (s) | init peak RSS (MiB) | check unchanged wall (s) | check peak RSS (MiB) |"
  echo "|---|---|---|---|---|"
  read -r ai_w ai_m <<<"$aide_init"; read -r ac_w ac_m <<<"$aide_check"
  echo "| aide 0.18 (sha256 rule) | $ai_w | $ai_m | $ac_w | $ac_m |"
  for row in "${rows[@]}"; do
    read -r alg i_w i_m c_w c_m <<<"$row"
    echo "| kubefim-agent ($alg) | $i_w | $i_m | $c_w | $c_m |"
  done
  read -r b_w b_m <<<"$b3"
  echo "| b3sum (content only, 2 threads) | $b_w | $b_m | – | – |"
  echo
  read -r _ k_iw _ k_cw _ <<<"${rows[0]}"
  python3 -c "print(f'kubefim (blake3) vs AIDE: init {float($ai_w)/float($k_iw):.1f}x faster, check {float($ac_w)/max(float($k_cw), 0.005):.1f}x faster')"

  local host1m=$bench_dir/host1m
  echo "generating 1,000,000 empty files in $host1m/tree" >&2
  generate_tree "$host1m/tree" 1000000 0
  config_for "$bench_dir/blake3.yaml" blake3
  rm -rf "$bench_dir/state-1m"
  local big_init big_check
  big_init=$(measure "0" "$agent" init --config "$bench_dir/blake3.yaml" --host-root "$host1m" --state-dir "$bench_dir/state-1m")
  big_check=$(measure "0" "$agent" check --config "$bench_dir/blake3.yaml" --host-root "$host1m" --state-dir "$bench_dir/state-1m")
  read -r bi_w bi_m <<<"$big_init"; read -r bc_w bc_m <<<"$big_check"
  echo
  echo "| 1,000,000 empty files | wall (s) | peak RSS (MiB) |"
  echo "|---|---|---|"
  echo "| kubefim-agent init | $bi_w | $bi_m |"
  echo "| kubefim-agent check (unchanged) | $bc_w | $bc_m |"
}

realtime_bench() {
  local host=$bench_dir/realtime-host state=$bench_dir/realtime-state
  rm -rf "$host" "$state"
  mkdir -p "$host/srv/app/conf"
  for i in $(seq 1 1000); do echo "seed $i" > "$host/srv/app/conf/seed$i"; done
  cat > "$bench_dir/realtime.yaml" <<YAML
apiVersion: kubefim.dev/v1alpha1
kind: FimWorkspace
metadata: {name: latency}
spec: {recommended: {enabled: false}, scan: {interval: 1h, realtime: true}}
---
apiVersion: kubefim.dev/v1alpha1
kind: MonitoredEntity
metadata: {name: app}
spec: {workspace: latency, type: LinuxFile, path: /srv/app, recursive: true}
YAML
  python3 - "$agent" "$bench_dir/realtime.yaml" "$host" "$state" <<'PY'
import json, os, subprocess, sys, time
agent, config, host, state = sys.argv[1:5]
proc = subprocess.Popen([agent, "--log-format", "json", "standalone", "--config", config, "--host-root", host,
                         "--state-dir", state, "--metrics-addr", "none"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
for line in proc.stderr:
    if "scan finished" in line:
        break
samples = []
target = os.path.join(host, "srv/app/conf")
for i in range(300):
    path = os.path.join(target, f"write{i}")
    start = time.monotonic()
    with open(path, "w") as f:
        f.write(f"value {i}\n")
    while True:
        change = json.loads(proc.stdout.readline())
        if change["path"] == f"/srv/app/conf/write{i}":
            break
    samples.append((time.monotonic() - start) * 1000)
    time.sleep(0.03)
proc.terminate()
proc.wait()
samples.sort()
pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
print(f"\n| realtime latency, write to JSON line ({len(samples)} writes, 1,000-file tree) | p50 (ms) | p99 (ms) | max (ms) |")
print("|---|---|---|---|")
print(f"| kubefim-agent standalone | {pick(0.50):.1f} | {pick(0.99):.1f} | {samples[-1]:.1f} |")
PY
}

render_bench() {
  echo
  cargo bench --locked -q -p kubefim-operator --bench render 2>/dev/null
}

case "$what" in
  scan) scan_bench ;;
  realtime) realtime_bench ;;
  render) render_bench ;;
  all) scan_bench; realtime_bench; render_bench ;;
  *) echo "usage: scripts/bench.sh [all|scan|realtime|render]" >&2; exit 2 ;;
esac
