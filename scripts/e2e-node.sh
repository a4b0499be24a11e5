#!/usr/bin/env bash
# The chart's own pods on a cluster with a real node: loads the image, installs the chart as a
# user would (only the image repository, tag and pull policy set), and checks what a user's
# first hours depend on: both operator replicas Ready with one leader, the agent Ready with the
# chart's securityContext, resources and probes; a first baseline of the node's real root; a
# change to a recommended file arriving as a FileChange with the host's path within 5 s; no
# restart and no failed probe through the first scans, a forced full re-hash and 10 minutes; a
# deleted agent pod resuming from the node's state with no BaselineReset, and a change made while
# no agent ran reported after; a helm upgrade rolling the agent without re-baselining; a real
# Prometheus scraping the agent through the chart's Service, every dashboard query answering;
# with actors enabled, a pod writing a monitored file through a hostPath mount named in its
# FileChange; helm uninstall removing every object the chart made. Ends with "N passed, M failed".
#
#   KUBECONFIG=... scripts/e2e-node.sh
#
# KUBEFIM_IMAGE_ARCHIVE: an OCI archive from scripts/image.sh (built when unset).
# KUBEFIM_IMAGE_LOADER: ctr (this machine's containerd, namespace k8s.io), kind (kind load
#   image-archive), none (the nodes can already pull it); guessed when unset.
# KUBEFIM_E2E_NODE_WATCH_SECONDS: how long the agent is watched for restarts (default 600).
# KUBEFIM_E2E_NODE_SHELL_IMAGE: an image with /bin/sh the nodes can run, for the pod that writes
#   a monitored file through a hostPath mount (default docker.io/library/busybox:1.36).
# KUBEFIM_E2E_NODE_KEEP=1 leaves the release installed at the end.
# Changes are written on the node's host: on this machine when the node's address is one of this
# machine's, in the node's container on kind.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if [ -z "${KUBECONFIG:-}" ]; then
  echo "e2e-node: set KUBECONFIG to a cluster with at least one schedulable Linux node" >&2
  exit 2
fi
export PATH="$(bash scripts/install-tools.sh | tail -n 1):$PATH"
command -v jq >/dev/null 2>&1 || { apt-get install -y -qq jq >/dev/null 2>&1 || { echo "e2e-node: jq is needed" >&2; exit 2; }; }
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install -q pyyaml
cargo build --release --locked -q -p kubectl-fim && export PATH="$repo/target/release:$PATH"
if ! kubectl version >/dev/null 2>&1; then
  echo "e2e-node: the API server of $KUBECONFIG does not answer" >&2
  exit 2
fi
nodes=$(kubectl get nodes -l kubernetes.io/os=linux -o json | jq -r '.items[] | select((.spec.unschedulable // false) | not) | select(any(.status.conditions[]; .type == "Ready" and .status == "True")) | .metadata.name')
if [ -z "$nodes" ]; then
  echo "e2e-node: the cluster has no schedulable, Ready Linux node: nothing can run the agent" >&2
  exit 2
fi
node=$(echo "$nodes" | head -n 1)
node_count=$(echo "$nodes" | wc -l)
ns=kubefim-system
release=kubefim
watch_seconds=${KUBEFIM_E2E_NODE_WATCH_SECONDS:-600}
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS  $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
# Waits up to $1 seconds for "$2..." to succeed.
wait_for() { local seconds=$1; shift; local until=$((SECONDS + seconds)); while ! "$@" >/dev/null 2>&1; do [ $SECONDS -ge $until ] && return 1; sleep 1; done; }

# ---- where the node's host is
node_ip=$(kubectl get node "$node" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
provider=$(kubectl get node "$node" -o jsonpath='{.spec.providerID}')
if ip -o addr show 2>/dev/null | grep -qw "inet $node_ip"; then
  on_node() { sh -c "$1"; }
  where="this machine"
elif [ "${provider#kind://}" != "$provider" ] && command -v docker >/dev/null 2>&1; then
  on_node() { docker exec "$node" sh -c "$1"; }
  where="kind node container $node"
else
  echo "e2e-node: cannot write on node $node ($node_ip): it is neither this machine nor a kind node" >&2
  exit 2
fi
echo "e2e-node: node $node ($node_ip, $where), $node_count schedulable node(s)"

# ---- the image
archive=${KUBEFIM_IMAGE_ARCHIVE:-}
if [ -z "$archive" ]; then
  archive=$(bash scripts/image.sh | tail -n 1) || { echo "e2e-node: scripts/image.sh failed" >&2; exit 2; }
fi
reference=$(tar -xOf "$archive" index.json | jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]')
repository=${reference%:*}
tag=${reference##*:}
loader=${KUBEFIM_IMAGE_LOADER:-}
if [ -z "$loader" ]; then
  if [ "$where" = "this machine" ] && [ -S /run/containerd/containerd.sock ]; then loader=ctr
  elif [ "${provider#kind://}" != "$provider" ]; then loader=kind
  else loader=none; fi
fi
case $loader in
  ctr) ctr -n k8s.io images import "$archive" >/dev/null ;;
  kind) kind load image-archive "$archive" --name "$(kubectl config current-context | sed 's/^kind-//')" ;;
  none) ;;
  *) echo "e2e-node: KUBEFIM_IMAGE_LOADER=$loader is not one of ctr, kind, none" >&2; exit 2 ;;
esac
echo "e2e-node: image $reference loaded with $loader"

# ---- install
kubectl apply --server-side -f charts/kubefim/crds/ >/dev/null
helm_values=(--set defaultWorkspace.enabled=true --set image.repository="$repository" --set image.tag="$tag" --set image.pullPolicy=IfNotPresent)
if ! helm install "$release" charts/kubefim -n "$ns" --create-namespace "${helm_values[@]}" >/dev/null; then
  echo "e2e-node: helm install failed" >&2
  exit 1
fi
install_started=$(date -u +%Y-%m-%dT%H:%M:%SZ)

operator_ready() { [ "$(kubectl -n $ns get deploy kubefim-operator -o jsonpath='{.status.readyReplicas}')" = "2" ]; }
agent_ready() { [ "$(kubectl -n $ns get ds kubefim-agent -o jsonpath='{.status.numberReady}')" = "$node_count" ]; }
check "the operator Deployment has both replicas Ready" wait_for 180 operator_ready
check "the agent DaemonSet pod is Running and Ready on every node" wait_for 180 agent_ready
leader_is_a_replica() {
  local holder; holder=$(kubectl -n $ns get lease kubefim-operator -o jsonpath='{.spec.holderIdentity}')
  kubectl -n $ns get pods -l app.kubernetes.io/component=operator -o name | grep -qx "pod/$holder"
}
check "one operator replica holds the Lease" wait_for 60 leader_is_a_replica

# The live pod carries the chart's securityContext, resources and probes, as rendered.
agent_pod() { kubectl -n $ns get pods -l app.kubernetes.io/component=agent --field-selector spec.nodeName="$node" -o jsonpath='{.items[0].metadata.name}'; }
pod=$(agent_pod)
live=$(kubectl -n $ns get pod "$pod" -o json | jq -S '.spec.containers[0] | {securityContext, resources, livenessProbe: .livenessProbe.httpGet.path, readinessProbe: .readinessProbe.httpGet.path, startupProbe: .startupProbe.httpGet.path}')
expected=$(helm template "$release" charts/kubefim -n "$ns" "${helm_values[@]}" --show-only templates/agent.yaml | python3 -c '
import json, sys, yaml
c = yaml.safe_load(sys.stdin)["spec"]["template"]["spec"]["containers"][0]
print(json.dumps({"securityContext": c["securityContext"], "resources": c["resources"],
  "livenessProbe": c["livenessProbe"]["httpGet"]["path"], "readinessProbe": c["readinessProbe"]["httpGet"]["path"],
  "startupProbe": c["startupProbe"]["httpGet"]["path"]}))' | jq -S .)
same_spec() { [ "$live" = "$expected" ] || { echo "live: $live"; echo "chart: $expected"; return 1; }; }
check "the agent pod runs with the chart's securityContext, resources and probes" same_spec

# ---- first baseline of the real root
status_json() { kubectl -n $ns get fimnodestatus "default.$node" -o json 2>/dev/null; }
first_scan() { status_json | jq -e '.status.lastScan.startedAt and .status.filesMonitored > 0' >/dev/null; }
check "the first baseline of the node's real root completes" wait_for 300 first_scan
files=$(status_json | jq -r '.status.filesMonitored')
generation=$(status_json | jq -r '.status.storeGeneration')
echo "      $files files in the baseline, store generation $generation"
fim_status() { kubectl fim status -n $ns 2>&1; }
reporting_all() { fim_status | grep -Eq "Machines reporting +$node_count/$node_count"; }
check "kubectl fim status shows every node reporting" wait_for 120 reporting_all
entities_active() { fim_status | grep -Eq "Entities active +[1-9]"; }
check "kubectl fim status shows the recommended items active" entities_active

fc_count() { kubectl -n $ns get filechanges -o json | jq --arg p "$1" '[.items[] | select(.spec.path == $p)] | length'; }
append_and_time() {
  local path=$1 before start
  before=$(fc_count "$path")
  start=$(date +%s%N)
  on_node "echo '# kubefim e2e-node $(date +%s)' >> $path"
  while [ "$(fc_count "$path")" -le "$before" ]; do
    if [ $(( ($(date +%s%N) - start) / 1000000 )) -gt 5000 ]; then return 1; fi
    sleep 0.1
  done
  echo "      $path arrived as a FileChange after $(( ($(date +%s%N) - start) / 1000000 )) ms"
}
on_node "cp /etc/host.conf /tmp/kubefim-e2e-host.conf"
check "a line appended to /etc/host.conf arrives as a FileChange within 5 s with the host's path" append_and_time /etc/host.conf
on_node "cat /tmp/kubefim-e2e-host.conf > /etc/host.conf"

# ---- no restart through scans, a forced full re-hash and the watch
restarts() { kubectl -n $ns get pod "$pod" -o jsonpath='{.status.containerStatuses[0].restartCount}'; }
unhealthy() { kubectl -n $ns get events --field-selector involvedObject.name="$pod",reason=Unhealthy -o name | wc -l; }
# Every file re-hashed at the next scan, and that scan within a minute; then back as installed.
scan_as_installed=$(kubectl -n $ns get fimworkspace default -o jsonpath='{.spec.scan}')
kubectl -n $ns patch fimworkspace default --type merge -p '{"spec":{"scan":{"rehashEvery":"1s","interval":"1m"}}}' >/dev/null
rehash_after=$(date -u +%Y-%m-%dT%H:%M:%SZ)
rehashed() { status_json | jq -e --arg after "$rehash_after" '.status.lastScan.startedAt >= $after' >/dev/null; }
sleep 2
check "a forced full re-hash of the real root completes" wait_for 600 rehashed
kubectl -n $ns patch fimworkspace default --type merge -p "{\"spec\":{\"scan\":$scan_as_installed}}" >/dev/null
echo "      watching agent pod $pod for ${watch_seconds}s"
sleep "$watch_seconds"
check "the agent pod restarted 0 times through its first scans, a full re-hash and ${watch_seconds}s" [ "$(restarts)" = "0" ]
check "no probe of the agent pod failed (no Unhealthy event)" [ "$(unhealthy)" = "0" ]

# ---- a deleted agent pod resumes from the node's state
resumed_change() {
  local path=/etc/kubefim-e2e-offline.conf
  kubectl -n $ns delete pod "$pod" --wait=true >/dev/null
  # The old pod is gone and its successor not started: the change happens while no agent runs.
  on_node "echo offline-$(date +%s) > $path"
  local changed_at; changed_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  wait_for 120 agent_ready || return 1
  pod=$(agent_pod)
  local started; started=$(kubectl -n $ns get pod "$pod" -o jsonpath='{.status.containerStatuses[0].state.running.startedAt}')
  [[ "$started" > "$changed_at" || "$started" == "$changed_at" ]] || { echo "      the new pod started before the change; inconclusive"; return 1; }
  wait_for 300 sh -c "[ \$(kubectl -n $ns get filechanges -o json | jq --arg p $path '[.items[] | select(.spec.path == \$p and .spec.category == \"Added\")] | length') -gt 0 ]"
}
check "a change made while no agent pod ran arrives after the new pod starts" resumed_change
on_node "rm -f /etc/kubefim-e2e-offline.conf"
sleep 5
same_generation() { [ "$(status_json | jq -r '.status.storeGeneration')" = "$generation" ]; }
no_reset() { ! status_json | jq -e '.status.conditions[] | select(.type == "Degraded" and .reason == "BaselineReset")' >/dev/null; }
check "the new pod resumed the node's store (same generation)" same_generation
check "no BaselineReset after the pod was deleted" no_reset

# ---- helm upgrade rolls the agent and re-baselines nothing
old_uid=$(kubectl -n $ns get pod "$pod" -o jsonpath='{.metadata.uid}')
changes_before=$(kubectl -n $ns get filechanges -o name | wc -l)
helm upgrade "$release" charts/kubefim -n "$ns" "${helm_values[@]}" --set agent.heartbeatSeconds=30 >/dev/null
rolled() { local p; p=$(agent_pod); [ -n "$p" ] && [ "$(kubectl -n $ns get pod "$p" -o jsonpath='{.metadata.uid}')" != "$old_uid" ] && agent_ready; }
check "helm upgrade with a changed agent value rolls the DaemonSet" wait_for 180 rolled
pod=$(agent_pod)
scanned_after_upgrade() { kubectl -n $ns logs "$pod" | grep -q '"scan finished"'; }
wait_for 300 scanned_after_upgrade
nothing_rebaselined() { kubectl -n $ns logs "$pod" | grep '"scan finished"' | head -n 1 | grep -q '"baselined_entities":0'; }
check "the upgraded agent's first scan re-baselined nothing" nothing_rebaselined
kept_store() { same_generation && no_reset; }
check "the upgrade kept the store (same generation, no BaselineReset)" kept_store
check "the upgrade reported no change" [ "$(kubectl -n $ns get filechanges -o name | wc -l)" = "$changes_before" ]

# ---- a real Prometheus through the chart's Service
if command -v prometheus >/dev/null 2>&1; then
  prom_dir=$(mktemp -d)
  # The targets are the chart's metrics Services' endpoints, labelled as a Kubernetes service
  # discovery would (Debian's prometheus is built without kubernetes_sd_configs).
  {
    echo "global: {scrape_interval: 5s}"
    echo "scrape_configs:"
    for component in agent operator; do
      echo "  - job_name: kubefim-$component"
      echo "    honor_labels: true"
      echo "    static_configs:"
      kubectl -n "$ns" get endpoints "kubefim-$component-metrics" -o json |
        jq -r '.subsets[]? as $s | $s.addresses[]? | [.ip, .targetRef.name, (.nodeName // ""), ([$s.ports[] | select(.name == "metrics") | .port][0])] | @tsv' |
        while IFS=$'\t' read -r ip pod_name node_name port; do
          echo "      - targets: ['$ip:$port']"
          echo "        labels: {job: kubefim-$component, install_namespace: $ns, pod: $pod_name, node: '$node_name'}"
        done
    done
  } >"$prom_dir/prometheus.yml"
  prometheus --config.file="$prom_dir/prometheus.yml" --storage.tsdb.path="$prom_dir/data" \
    --web.listen-address=127.0.0.1:19090 >"$prom_dir/log" 2>&1 &
  prom=$!
  query() { curl -s --get http://127.0.0.1:19090/api/v1/query --data-urlencode "query=$1"; }
  agent_up() { [ "$(query 'sum(up{job="kubefim-agent"})' | jq -r '.data.result[0].value[1]')" = "$node_count" ]; }
  check "a real Prometheus scrapes the agent pod through the chart's metrics Service" wait_for 90 agent_up
  sleep 40
  empty=0
  while IFS= read -r expr; do
    result=$(query "$expr")
    if [ "$(echo "$result" | jq -r '.status')" != success ] || [ "$(echo "$result" | jq '.data.result | length')" = 0 ]; then
      empty=$((empty + 1)); echo "      no data: $expr"
    fi
  done < <(jq -r '.panels[].targets[]?.expr' charts/kubefim/dashboards/kubefim.json |
    sed -e 's/\$namespace/.*/g; s/\$workspace/.*/g; s/\$node/.*/g; s/\$__range/1h/g; s/\$__rate_interval/1m/g')
  check "every dashboard query returns data from the real Prometheus" [ "$empty" = 0 ]
  kill "$prom"; wait "$prom" 2>/dev/null; rm -rf "$prom_dir"
else
  fail "a real Prometheus scrapes the agent (prometheus is not installed: apt-get install prometheus)"
fi

# ---- actors: the pod behind a change
shell_image=${KUBEFIM_E2E_NODE_SHELL_IMAGE:-docker.io/library/busybox:1.36}
# With agent.actors.enabled and the workspace's scan.actors On, a line appended to a monitored
# file from inside a pod that mounts the host's /etc arrives as a FileChange naming that pod,
# its container and the shell that wrote it.
helm upgrade "$release" charts/kubefim -n "$ns" "${helm_values[@]}" --set agent.actors.enabled=true >/dev/null
kubectl -n $ns patch fimworkspace default --type merge -p '{"spec":{"scan":{"actors":"On"}}}' >/dev/null
actors_active() { status_json | jq -e '.status.realtime.actors == "Active"' >/dev/null; }
check "with agent.actors.enabled and scan.actors On, the node's status says actors are Active" wait_for 180 actors_active
status_json | jq -r '"      actors \(.status.realtime.actors) \(.status.realtime.actorsReason // "")"'
writer_ns=kubefim-e2e-writer
kubectl create namespace "$writer_ns" >/dev/null
kubectl -n "$writer_ns" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  nodeName: $node
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
    - name: shell
      image: $shell_image
      imagePullPolicy: IfNotPresent
      command: ["sh", "-c", "sleep 3600"]
      volumeMounts: [{name: host-etc, mountPath: /host-etc}]
  volumes: [{name: host-etc, hostPath: {path: /etc, type: Directory}}]
EOF
writer_running() { [ "$(kubectl -n "$writer_ns" get pod writer -o jsonpath='{.status.phase}')" = Running ]; }
named_pod() {
  wait_for 120 writer_running || { echo "      the writer pod is not Running"; return 1; }
  local path=/etc/host.conf uid container
  uid=$(kubectl -n "$writer_ns" get pod writer -o jsonpath='{.metadata.uid}')
  container=$(kubectl -n "$writer_ns" get pod writer -o jsonpath='{.status.containerStatuses[0].containerID}')
  on_node "cp $path /tmp/kubefim-e2e-host.conf"
  local written; written=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  kubectl -n "$writer_ns" exec writer -- sh -c "echo '# kubefim e2e-node actor' >> /host-etc/host.conf"
  actor() {
    kubectl -n $ns get filechanges -o json | jq -ce --arg p "$path" --arg after "$written" \
      '[.items[] | select(.spec.path == $p and .spec.actor != null and .spec.detectedAt[0:19] >= $after[0:19])] | last | .spec.actor'
  }
  local found=0 seen
  wait_for 30 actor || found=1
  seen=$(actor)
  on_node "cat /tmp/kubefim-e2e-host.conf > $path"
  [ "$found" = 0 ] || { echo "      no FileChange of $path with an actor"; return 1; }
  echo "      actor: $seen"
  echo "$seen" | jq -e --arg ns "$writer_ns" --arg uid "$uid" --arg id "${container#*://}" \
    '.pod.namespace == $ns and .pod.name == "writer" and .pod.uid == $uid and .container.id == $id and .uid == 0' >/dev/null
}
check "a line appended to /etc/host.conf from a pod with a hostPath mount names that pod, its container and uid" named_pod
kubectl delete namespace "$writer_ns" --wait=false >/dev/null

# ---- uninstall
if [ "${KUBEFIM_E2E_NODE_KEEP:-}" != 1 ]; then
  helm uninstall "$release" -n "$ns" --wait >/dev/null
  leftover() {
    kubectl get all,configmaps,serviceaccounts,roles,rolebindings,leases,fimworkspaces,filechanges,fimnodestatuses -n "$ns" -o name 2>/dev/null | grep -v -e '^configmap/kube-root-ca.crt$' -e '^configmap/openshift-service-ca.crt$' -e '^serviceaccount/default$'
    kubectl get clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings -o name | grep -F ".$ns" || true
  }
  nothing_left() { [ -z "$(leftover)" ]; }
  if wait_for 120 nothing_left; then pass "helm uninstall removes every object the chart made (node ConfigMaps included)"
  else fail "helm uninstall removes every object the chart made; left: $(leftover | tr '\n' ' ')"; fi
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
