#!/usr/bin/env bash
# `make demo`: a real single-node Kubernetes built from source, Lambdalet's CRDs and operator on
# it, and the example function deployed. Leaves the cluster up; `make cluster-down` ends it.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=e2e/cluster/cluster.sh
in_node() { "$cluster" exec -- "$@"; }

echo "==> cluster binaries (built once, then cached)" >&2
e2e/cluster/build.sh >/dev/null
echo "==> single-node cluster" >&2
"$cluster" up

echo "==> Lambdalet: CRDs and operator" >&2
in_node kubectl apply --server-side -f crds/
in_node kubectl wait --for=condition=Established crd/functions.lambdalet.dev --timeout=30s
# shellcheck disable=SC1090
operator_kubeconfig="$(. <("$cluster" env) && echo "$LAMBDALET_OPERATOR_KUBECONFIG")"
"$cluster" run lambdalet-operator -- env KUBECONFIG="$operator_kubeconfig" \
    "$PWD/.venv/bin/lambdalet" operator

echo "==> the example function" >&2
in_node kubectl create namespace demo --dry-run=client -o yaml | in_node kubectl apply -f -
in_node kubectl apply -n demo -f examples/hello-python/function.yaml
in_node kubectl wait -n demo fn/hello-python --for=condition=Ready --timeout=60s
in_node kubectl get fn -n demo
in_node kubectl get deployment,service,configmap -n demo -l app.kubernetes.io/managed-by=lambdalet

cat >&2 <<'MSG'

The function is deployed and scaled to zero. Try:
  e2e/cluster/cluster.sh exec -- kubectl get fn -A
  e2e/cluster/cluster.sh exec -- kubectl describe fn -n demo hello-python
Stop everything with: make cluster-down
MSG
