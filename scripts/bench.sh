#!/usr/bin/env bash
# kubefim benchmarks on this machine. Prints markdown tables (copied into docs/benchmarks.md).
#
#   scripts/bench.sh            # everything
#   scripts/bench.sh scan       # init / check as ratios to b3sum and find, AIDE, and the 1M-file RSS
#   scripts/bench.sh compare BIN  # init / check of this build against another kubefim-agent binary
#   scripts/bench.sh idle       # CPU and RSS of an idle agent with this machine's recommended catalog
#   scripts/bench.sh realtime   # latency from a write to its JSON line in standalone mode
#   scripts/bench.sh cluster-realtime  # latency from a write to its FileChange (KUBECONFIG)
#   scripts/bench.sh cluster-retention # retention over 100,000 FileChanges (KUBECONFIG)
#   scripts/bench.sh health     # /healthz, /metrics and heartbeats through a 1M-file scan on 1 CPU (KUBECONFIG, root)
#   scripts/bench.sh render     # operator: per-node configuration for 5,000 nodes
#   scripts/bench.sh packages-noise  # reinstall 30 packages of a debootstrapped bookworm: what is explained (root)
#   scripts/bench.sh actors     # write-to-line latency and agent CPU under 1,000 writes/s, actors off and on (root)
#
# Trees are generated under $BENCH_DIR (default /tmp/kubefim-bench) and kept between runs.
# Every timed command runs with a warm page cache (each tree is read once before timing), so the
# figures compare the tools' own work rather than the disk's; each is compared with a reference
# command timed in the same invocation (ratios, not absolute times), medians of 5 runs.
set -euo pipefail
cd "$(dirname "$0")/.."

bench_dir=${BENCH_DIR:-/tmp/kubefim-bench}
what=${1:-all}
mkdir -p "$bench_dir"

export PATH="$(bash scripts/install-tools.sh | tail -n 1):$PATH"
cargo build --release --locked -q -p kubefim-agent
agent=$PWD/target/release/kubefim-agent

# Times commands precisely (wall clock, CPU time and peak RSS of the whole process tree, from
# wait4), `runs` times each, and prints medians. Used by every table below.
timer=$bench_dir/timer.py
cat > "$timer" <<'PY'
import json, os, statistics, subprocess, sys, time

def run(command, accept):
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in accept:
        sys.exit(f"command failed with {code}: {command}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024

def median(command, accept=(0,), runs=5, before=None):
    samples = []
    for _ in range(runs):
        if before:
            subprocess.run(before, shell=True, check=True)
        samples.append(run(command, accept))
    return {k: statistics.median(s[i] for s in samples) for i, k in enumerate(["wall", "cpu", "rss"])}

if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(median(spec["command"], tuple(spec.get("accept", [0])), spec.get("runs", 5), spec.get("before"))))
PY

# measure '{"command": [...], "accept": [0, 1], "runs": 5, "before": "shell command run before each"}'
measure() { python3 "$timer" "$1"; }

# The tree of the issue: 100,000 files in 1,000 directories, 90% 100 B-8 KB, 9% 8-100 KB,
# 1% 100 KB-1 MB (about 1.3 GiB); or `files` empty files.
generate_tree() {
  local root=$1 files=$2 empty=$3
  if [ -f "$root/.complete" ]; then return; fi
  rm -rf "$root"
  python3 - "$root" "$files" "$empty" <<'PY'
import os, random, sys
root, files, empty = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "empty"
random.seed(42)
block = os.urandom(1 << 20)
per_dir = max(1, files // 1000)
for i in range(files):
    d = os.path.join(root, f"d{i // per_dir // 100:02d}", f"d{i // per_dir:04d}")
    if i % per_dir == 0:
        os.makedirs(d, exist_ok=True)
    r = random.random()
    size = 0 if empty else random.randint(100, 8 << 10) if r < 0.90 else random.randint(8 << 10, 100 << 10) if r < 0.99 else random.randint(100 << 10, 1 << 20)
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

json_field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }

scan_bench() {
  local host=$bench_dir/host-100k-1000dirs
  echo "generating 100,000 files (~1.3 GiB) in 1,000 directories in $host/tree" >&2
  generate_tree "$host/tree" 100000 sized
  local files size
  files=$(find "$host/tree" -type f | wc -l)
  size=$(du -sh --apparent-size "$host/tree" | cut -f1)
  find "$host/tree" -type f -print0 | xargs -0 cat > /dev/null   # warm the page cache
  config_for "$bench_dir/blake3.yaml" blake3
  local state=$bench_dir/state-blake3 config=$bench_dir/blake3.yaml
  echo "timing init and check against their references, medians of 5" >&2
  local init b3 check find_ref
  init=$(measure "{\"command\": [\"$agent\", \"init\", \"--config\", \"$config\", \"--host-root\", \"$host\", \"--state-dir\", \"$state\"], \"before\": \"rm -rf '$state'\"}")
  b3=$(measure "{\"command\": [\"bash\", \"-c\", \"find '$host/tree' -type f -print0 | xargs -0 -P2 -n 2000 b3sum > /dev/null\"]}")
  check=$(measure "{\"command\": [\"$agent\", \"check\", \"--config\", \"$config\", \"--host-root\", \"$host\", \"--state-dir\", \"$state\"]}")
  find_ref=$(measure "{\"command\": [\"bash\", \"-c\", \"find '$host/tree' -printf '%i %s %T@ %C@ %m %U %G\\\\n' > /dev/null\"]}")

  echo "timing AIDE 0.18 (sha256 rule), medians of 3" >&2
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
  local aide_init aide_check
  aide_init=$(measure "{\"command\": [\"aide\", \"-c\", \"$aide_dir/aide.conf\", \"--init\"], \"runs\": 3, \"before\": \"rm -f '$aide_dir'/aide.db*\"}")
  mv "$aide_dir/aide.db.new" "$aide_dir/aide.db"
  aide_check=$(measure "{\"command\": [\"aide\", \"-c\", \"$aide_dir/aide.conf\", \"--check\"], \"runs\": 3}")

  python3 - "$init" "$b3" "$check" "$find_ref" "$aide_init" "$aide_check" "$files" "$size" "$(nproc)" <<'PY'
import json, sys
init, b3, check, find, aide_init, aide_check = (json.loads(a) for a in sys.argv[1:7])
files, size, cores = sys.argv[7:10]
print(f"\nTree: {int(files):,} files, {size}, 1,000 directories, warm page cache, {cores} cores; medians of 5 (AIDE: 3).\n")
print("| work | kubefim wall (s) | kubefim CPU (s) | kubefim peak RSS (MiB) | reference | reference wall (s) | reference CPU (s) | ratio | goal |")
print("|---|---|---|---|---|---|---|---|---|")
row = lambda work, k, ref_name, r, goal: print(
    f"| {work} | {k['wall']:.3f} | {k['cpu']:.2f} | {k['rss']:.1f} | {ref_name} | {r['wall']:.3f} | {r['cpu']:.2f} | **{k['wall'] / r['wall']:.2f}x** | {goal} |")
row("baseline init (blake3)", init, "`find -type f -print0 \\| xargs -0 -P2 -n 2000 b3sum`", b3, "≤ 1.0x")
row("check, nothing changed", check, "`find -printf '%i %s %T@ %C@ %m %U %G\\n'`", find, "≤ 0.8x")
print(f"\nAIDE 0.18 (sha256 rule, the same attributes): init {aide_init['wall']:.2f} s, check {aide_check['wall']:.2f} s "
      f"(peak RSS {aide_init['rss']:.0f} / {aide_check['rss']:.0f} MiB): kubefim is **{aide_init['wall'] / init['wall']:.1f}x** faster to "
      f"initialise and **{aide_check['wall'] / check['wall']:.0f}x** faster to check.")
PY

  local host1m=$bench_dir/host-1m-empty
  echo "generating 1,000,000 empty files in $host1m/tree" >&2
  generate_tree "$host1m/tree" 1000000 empty
  local big_init big_check state1m=$bench_dir/state-1m
  big_init=$(measure "{\"command\": [\"$agent\", \"init\", \"--config\", \"$config\", \"--host-root\", \"$host1m\", \"--state-dir\", \"$state1m\"], \"runs\": 1, \"before\": \"rm -rf '$state1m'\"}")
  big_check=$(measure "{\"command\": [\"$agent\", \"check\", \"--config\", \"$config\", \"--host-root\", \"$host1m\", \"--state-dir\", \"$state1m\"], \"runs\": 3}")
  python3 - "$big_init" "$big_check" <<'PY'
import json, sys
init, check = (json.loads(a) for a in sys.argv[1:3])
print("\n| 1,000,000 empty files | wall (s) | peak RSS (MiB) | goal |")
print("|---|---|---|---|")
print(f"| kubefim-agent init | {init['wall']:.2f} | {init['rss']:.1f} | |")
print(f"| kubefim-agent check (unchanged) | {check['wall']:.2f} | **{check['rss']:.1f}** | ≤ 64 MiB |")
PY
}

# This build against another kubefim-agent binary (an earlier commit built elsewhere, say
# `git worktree add /tmp/old <commit> && cargo build --release` there): init and check of the
# 100,000-file tree, the two binaries alternating run by run so that the machine's drift falls on
# both alike; medians of 9. What a regression across commits is measured with.
compare_bench() {
  local other=${1:?usage: scripts/bench.sh compare PATH-TO-OTHER-kubefim-agent}
  local host=$bench_dir/host-100k-1000dirs
  generate_tree "$host/tree" 100000 sized
  find "$host/tree" -type f -print0 | xargs -0 cat > /dev/null
  config_for "$bench_dir/blake3.yaml" blake3
  python3 - "$timer" "$agent" "$other" "$bench_dir/blake3.yaml" "$host" "$bench_dir" <<'PY'
import importlib.util, shutil, statistics, sys
spec = importlib.util.spec_from_file_location("timer", sys.argv[1]); timer = importlib.util.module_from_spec(spec); spec.loader.exec_module(timer)
agents = {"this build": sys.argv[2], "other": sys.argv[3]}
config, host, work = sys.argv[4:7]
samples = {(name, verb): [] for name in agents for verb in ("init", "check")}
for _ in range(9):
    for verb in ("init", "check"):
        for name, agent in agents.items():
            state = f"{work}/compare-state-{name.replace(' ', '-')}"
            if verb == "init":
                shutil.rmtree(state, ignore_errors=True)
            samples[(name, verb)].append(timer.run([agent, verb, "--config", config, "--host-root", host, "--state-dir", state], (0,))[0])
print(f"\n| work | this build wall (s) | other wall (s) | ratio |\n|---|---|---|---|")
for verb in ("init", "check"):
    ours, theirs = (statistics.median(samples[(n, verb)]) for n in agents)
    print(f"| {verb} | {ours:.3f} | {theirs:.3f} | **{ours / theirs:.2f}x** |")
PY
}

# The agent left alone with the recommended catalog of this machine: CPU and memory once its
# first scan is done, over a minute.
idle_bench() {
  local state=$bench_dir/idle-state
  rm -rf "$state"
  cat > "$bench_dir/idle.yaml" <<YAML
apiVersion: kubefim.dev/v1alpha1
kind: FimWorkspace
metadata: {name: idle}
spec: {recommended: {enabled: true}, scan: {interval: 15m, realtime: true}}
YAML
  python3 - "$agent" "$bench_dir/idle.yaml" "$state" <<'PY'
import os, subprocess, sys, time
agent, config, state = sys.argv[1:4]
proc = subprocess.Popen([agent, "--log-format", "json", "standalone", "--config", config, "--host-root", "/",
                         "--state-dir", state, "--metrics-addr", "none"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
for line in proc.stderr:
    if "scan finished" in line:
        break
def ticks():
    fields = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
def rss(key):
    for line in open(f"/proc/{proc.pid}/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
time.sleep(5)
files = sum(1 for _ in os.scandir(f"/proc/{proc.pid}/fd"))
before, start = ticks(), time.monotonic()
time.sleep(60)
used = (ticks() - before) / os.sysconf("SC_CLK_TCK")
elapsed = time.monotonic() - start
now, peak = rss("VmRSS:"), rss("VmHWM:")
proc.terminate()
proc.wait()
print("\n| idle agent, recommended catalog of this machine, realtime on (60 s after the first scan) | CPU (% of one core) | RSS (MiB) | peak RSS during the first scan (MiB) | goal |")
print("|---|---|---|---|---|")
print(f"| kubefim-agent standalone | {100 * used / elapsed:.2f} | **{now:.1f}** | {peak:.1f} | ≈ 0 CPU, ≤ 32 MiB |")
PY
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
for i in range(200):
    path = os.path.join(target, f"write{i}")
    start = time.monotonic()
    with open(path, "w") as f:
        f.write(f"value {i}\n")
    while True:
        change = json.loads(proc.stdout.readline())
        if change["path"] == f"/srv/app/conf/write{i}":
            break
    samples.append((time.monotonic() - start) * 1000)
    time.sleep(max(0, 0.2 - (time.monotonic() - start)))
proc.terminate()
proc.wait()
samples.sort()
pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
print(f"\n| realtime latency, write to JSON line ({len(samples)} writes at 5 per second, 1,000-file tree) | p50 (ms) | p99 (ms) | max (ms) | goal |")
print("|---|---|---|---|---|")
print(f"| kubefim-agent standalone | {pick(0.50):.1f} | {pick(0.99):.1f} | {samples[-1]:.1f} | p99 < 50 ms |")
PY
}

# Actors off, then on, in the same invocation: a writer appends to 100 monitored files at
# 1,000 writes/s for 20 s while a probe file is written 5 times a second and timed to its JSON
# line; the agent's CPU is read from /proc over the window.
actors_bench() {
  local host=$bench_dir/actors-host
  rm -rf "$host"
  mkdir -p "$host/srv/app/load" "$host/srv/app/probe"
  for i in $(seq 0 99); do echo "seed" > "$host/srv/app/load/f$i"; done
  for mode in Off On; do
    cat > "$bench_dir/actors-$mode.yaml" <<YAML
apiVersion: kubefim.dev/v1alpha1
kind: FimWorkspace
metadata: {name: actors}
spec: {recommended: {enabled: false}, scan: {interval: 1h, realtime: true, actors: $mode}}
---
apiVersion: kubefim.dev/v1alpha1
kind: MonitoredEntity
metadata: {name: app}
spec: {workspace: actors, type: LinuxFile, path: /srv/app, recursive: true}
YAML
  done
  python3 - "$agent" "$bench_dir" "$host" <<'PY'
import json, os, shutil, subprocess, sys, threading, time
agent, bench, host = sys.argv[1:4]
hz = os.sysconf("SC_CLK_TCK")

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / hz

def run(mode):
    state = os.path.join(bench, f"actors-state-{mode}")
    shutil.rmtree(state, ignore_errors=True)
    proc = subprocess.Popen([agent, "--log-format", "json", "standalone", "--config", os.path.join(bench, f"actors-{mode}.yaml"),
                             "--host-root", host, "--state-dir", state, "--metrics-addr", "none"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    for line in proc.stderr:
        if "scan finished" in line:
            break
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    seen, lock, probes = {}, threading.Lock(), []
    counts = {"changes": 0, "with_actor": 0}
    def reader():
        for line in proc.stdout:
            change = json.loads(line)
            with lock:
                counts["changes"] += 1
                counts["with_actor"] += "actor" in change
                seen[change["path"]] = time.monotonic()
    threading.Thread(target=reader, daemon=True).start()
    stop = threading.Event()
    writes = [0]
    def writer():
        files = [open(os.path.join(host, f"srv/app/load/f{i}"), "a") for i in range(100)]
        start = time.monotonic()
        while not stop.is_set():
            files[writes[0] % 100].write("x\n"); files[writes[0] % 100].flush()
            writes[0] += 1
            time.sleep(max(0, start + writes[0] / 1000 - time.monotonic()))
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    threading.Thread(target=writer, daemon=True).start()
    for i in range(100):
        path = f"/srv/app/probe/p{i}"
        start = time.monotonic()
        with open(os.path.join(host, path.lstrip("/")), "w") as f:
            f.write("probe\n")
        while True:
            with lock:
                if path in seen:
                    probes.append((seen[path] - start) * 1000)
                    break
            if time.monotonic() - start > 10:
                probes.append(float("inf"))
                break
            time.sleep(0.001)
        time.sleep(max(0, start + 0.2 - time.monotonic()))
    stop.set()
    cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
    rate = writes[0] / (time.monotonic() - t0)
    time.sleep(1)
    proc.terminate(); proc.wait()
    probes.sort()
    pick = lambda q: probes[min(len(probes) - 1, int(q * len(probes)))]
    return pick(0.5), pick(0.99), cpu, rate, counts["changes"], counts["with_actor"]

rows = {mode: run(mode) for mode in ["Off", "On"]}
print("\n| actors, 100 monitored files appended to at ~1,000 writes/s for 20 s, a probe written 5 times a second | probe p50 (ms) | probe p99 (ms) | agent CPU (% of one core) | writes/s | changes reported | with an actor |")
print("|---|---|---|---|---|---|---|")
for mode, (p50, p99, cpu, rate, changes, with_actor) in rows.items():
    print(f"| scan.actors: {mode} | {p50:.1f} | {p99:.1f} | {cpu:.1f} | {rate:.0f} | {changes} | {with_actor} |")
off, on = rows["Off"], rows["On"]
print(f"| ratio On / Off | {on[0] / off[0]:.2f} | {on[1] / off[1]:.2f} | {on[2] / off[2]:.2f} | | | |")
PY
}

# Realtime through a real API server: needs KUBECONFIG (see docs/e2e.md); runs the ignored
# end-to-end benchmark, which prints its table.
cluster_realtime_bench() {
  if [ -z "${KUBECONFIG:-}" ]; then
    echo "cluster-realtime needs KUBECONFIG naming a cluster (docs/e2e.md)" >&2
    exit 2
  fi
  bash scripts/e2e.sh latency:: --ignored --nocapture 2>&1 | grep '^|'
}

# Retention over 100,000 FileChanges on a real API server (KUBECONFIG; several minutes).
cluster_retention_bench() {
  if [ -z "${KUBECONFIG:-}" ]; then
    echo "cluster-retention needs KUBECONFIG naming a cluster (docs/e2e.md)" >&2
    exit 2
  fi
  bash scripts/e2e.sh retention::retention_over --ignored --nocapture 2>&1 | grep '^|'
}

# The agent's probes and heartbeat through a full scan and re-hash of 1,000,000 files in a
# cgroup of one CPU, reports flowing to the API server (KUBECONFIG; root; about 10 minutes).
health_bench() {
  if [ -z "${KUBECONFIG:-}" ]; then
    echo "health needs KUBECONFIG naming a cluster (docs/e2e.md)" >&2
    exit 2
  fi
  local log=$bench_dir/health.log
  if ! KUBEFIM_E2E_PROFILE=release bash scripts/e2e.sh health:: --ignored --nocapture >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "health: the run failed; all of it is in $log" >&2
    exit 1
  fi
  grep -E '^\||^health:' "$log"
}

# The base packages of a Debian bookworm minbase root, each reinstalled from the .deb debootstrap
# installed it from, one dpkg run each as apt orders them (base-files pre-depends on awk).
noise_packages="coreutils bash util-linux login libc-bin dash sed grep gzip tar findutils diffutils
  mawk hostname debianutils passwd adduser mount bsdutils e2fsprogs sysvinit-utils ncurses-bin
  perl-base dpkg apt base-files libc6 libpam-modules libpam-runtime tzdata"

packages_noise_bench() {
  local cached work=$bench_dir/noise
  cached=$(bash scripts/bookworm-root.sh)
  rm -rf "$work" && mkdir -p "$work"
  cp -a "$cached" "$work/host"
  printf 'apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: bookworm}\nspec:\n  packages: {attribution: Report}\n' >"$work/config.yaml"
  local args=(--config "$work/config.yaml" --host-root "$work/host" --state-dir "$work/state" --node-name bookworm)
  "$agent" init "${args[@]}" >/dev/null 2>&1
  local count=0
  for package in $noise_packages; do
    local deb
    deb=$(cd "$work/host" && ls var/cache/apt/archives/"${package}"_*.deb)
    DEBIAN_FRONTEND=noninteractive chroot "$work/host" /usr/bin/dpkg -i "/$deb" >>"$work/dpkg.log" 2>&1
    count=$((count + 1))
  done
  local code=0
  "$agent" check --json "${args[@]}" >"$work/changes.jsonl" 2>"$work/check.log" || code=$?
  if [ "$code" -gt 1 ]; then
    cat "$work/check.log" >&2
    exit 1
  fi
  python3 - "$work/changes.jsonl" "$count" <<'PY'
import collections, json, sys
changes = [json.loads(line) for line in open(sys.argv[1])]
kinds = collections.Counter()
listed = []
for c in changes:
    a = c.get("attribution")
    file = (c.get("current") or {}).get("fileType") == "file"
    database = c["path"].startswith("/var/lib/dpkg/")
    if a is None:
        kinds["unexplained"] += 1
        listed.append(("unexplained", c))
    elif a["kind"] == "OperationUnverified":
        kinds["unverified"] += 1
        listed.append(("operation-unverified", c))
    elif database:
        kinds["database"] += 1
    elif file and a.get("digestVerified"):
        kinds["verified"] += 1
    else:
        kinds["owned"] += 1
print(f"\n| packages reinstalled | changes | explained, digest verified | explained, links and directories | explained, database files | operation-unverified | unexplained |")
print("|---|---|---|---|---|---|---|")
print(f"| {sys.argv[2]} | {len(changes)} | {kinds['verified']} | {kinds['owned']} | {kinds['database']} | {kinds['unverified']} | {kinds['unexplained']} |")
if listed:
    print("\n| reported as | path | changed | why |")
    print("|---|---|---|---|")
for label, c in listed:
    why = c.get("unexplained") or ", ".join((c.get("attribution") or {}).get("operatedPackages", [])[:3])
    print(f"| {label} | {c['path']} | {' '.join(c.get('changedAttributes', []))} | {why} |")
PY
}

render_bench() {
  echo
  cargo bench --locked -q -p kubefim-operator --bench render 2>/dev/null
}

case "$what" in
  scan) scan_bench ;;
  compare) compare_bench "${2:-}" ;;
  idle) idle_bench ;;
  realtime) realtime_bench ;;
  cluster-realtime) cluster_realtime_bench ;;
  cluster-retention) cluster_retention_bench ;;
  health) health_bench ;;
  render) render_bench ;;
  packages-noise) packages_noise_bench ;;
  actors) actors_bench ;;
  all) scan_bench; idle_bench; realtime_bench; render_bench ;;
  *) echo "usage: scripts/bench.sh [all|scan|compare BIN|idle|realtime|cluster-realtime|cluster-retention|health|render|packages-noise]" >&2; exit 2 ;;
esac
