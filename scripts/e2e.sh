#!/usr/bin/env bash
# The end-to-end suite (tests/, crate kubefim-e2e) against the cluster KUBECONFIG names: see
# docs/e2e.md. With no KUBECONFIG or no reachable API server it says so and exits 2: it never
# pretends to have run. scripts/test.sh does not call it.
#
# The chart's cluster-scoped objects (roles, bindings, the admission policy) are installed once
# per run with Helm's ownership (release kubefim-e2e, operator and agent off: the suite runs
# those as local processes) and uninstalled at the end, so the cluster is left as it was found.
# The CRDs are applied first (the suite needs the current schema) and removed at the end only
# if the run created them.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${KUBECONFIG:-}" ]; then
  echo "e2e: KUBECONFIG is not set; point it at a cluster (kind, k3d or any other, see docs/e2e.md). Nothing was run." >&2
  exit 2
fi
if ! kubectl version --request-timeout=10s >/dev/null 2>&1; then
  echo "e2e: the API server of KUBECONFIG=$KUBECONFIG does not answer. Nothing was run." >&2
  exit 2
fi
export KUBECONFIG="$(cd "$(dirname "$KUBECONFIG")" && pwd)/$(basename "$KUBECONFIG")"

tools_bin=$(bash scripts/install-tools.sh | tail -n 1)
export PATH="$tools_bin:$PATH"

# KUBEFIM_E2E_PROFILE=release runs the release binaries (the benchmarks do).
if [ "${KUBEFIM_E2E_PROFILE:-debug}" = release ]; then
  cargo build --locked --release -p kubefim-agent -p kubefim-operator -p kubectl-fim
else
  cargo build --locked -p kubefim-agent -p kubefim-operator -p kubectl-fim
fi

release=kubefim-e2e
export KUBEFIM_E2E_INSTALL_NAMESPACE=${KUBEFIM_E2E_INSTALL_NAMESPACE:-kubefim-e2e}
install=$KUBEFIM_E2E_INSTALL_NAMESPACE
crds=(fimworkspaces.kubefim.dev monitoredentities.kubefim.dev filechanges.kubefim.dev fimnodestatuses.kubefim.dev)
if kubectl get crd "${crds[0]}" >/dev/null 2>&1; then crds_existed=yes; else crds_existed=no; fi

cleanup() {
  status=$?
  echo "e2e: removing what the run installed"
  helm uninstall "$release" -n "$install" --wait >/dev/null 2>&1 || true
  kubectl delete namespace "$install" --ignore-not-found --wait=true --timeout=120s >/dev/null 2>&1 || true
  # Namespaces and Nodes of tests that did not clean up (a test process killed mid-way): the
  # suite labels everything it creates kubefim-e2e, and nothing else is touched.
  kubectl delete namespaces -l kubefim-e2e --wait=true --timeout=120s >/dev/null 2>&1 || true
  kubectl delete nodes -l kubefim-e2e --wait=true >/dev/null 2>&1 || true
  if [ "$crds_existed" = no ]; then
    kubectl delete crd "${crds[@]}" --ignore-not-found --wait=true >/dev/null 2>&1 || true
  fi
  left=$( (kubectl get clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings -o name 2>/dev/null | grep kubefim; \
           kubectl get namespaces -l kubefim-e2e -o name; \
           kubectl get namespaces -o name | grep -x "namespace/$install"; \
           kubectl get nodes -l kubefim-e2e -o name) || true)
  if [ -n "$left" ]; then
    echo "e2e: left behind:" >&2
    echo "$left" >&2
    [ "$status" -eq 0 ] && status=1
  else
    echo "e2e: no kubefim object left behind"
  fi
  exit "$status"
}
trap cleanup EXIT

kubectl apply --server-side --force-conflicts -f charts/kubefim/crds >/dev/null
kubectl wait --for=condition=Established --timeout=60s "${crds[@]/#/crd/}" >/dev/null
# A namespace selector, as the tenancy scenario that allows namespaces by label uses: with one
# the chart lets the operator list and watch Namespaces, without one it does not.
helm install "$release" charts/kubefim -n "$install" --create-namespace --skip-crds --wait \
  --set operator.enabled=false --set agent.enabled=false \
  --set workspaceNamespaceSelector=kubefim-e2e.dev/monitoring >/dev/null
# A new admission policy takes about a second to be enforced (docs/design.md#verified-facts).
sleep 3

# One test at a time: tests share the install namespace's Lease and RBAC.
cargo test --locked -p kubefim-e2e --test e2e -- --test-threads=1 "$@"
