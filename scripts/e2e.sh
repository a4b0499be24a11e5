#!/usr/bin/env bash
# The end-to-end suite (tests/, crate kubefim-e2e) against the cluster KUBECONFIG names: see
# docs/e2e.md. With no KUBECONFIG or no reachable API server it says so and exits 2: it never
# pretends to have run. scripts/test.sh does not call it.
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

cargo build --locked -p kubefim-agent -p kubefim-operator -p kubectl-fim
# One test at a time: the chart's cluster-scoped objects (admission policy, roles) are shared.
cargo test --locked -p kubefim-e2e --test e2e -- --test-threads=1 "$@"
