#!/usr/bin/env bash
# `make demo`: a real single-node Kubernetes built from source, Lambdalet installed on it with
# its Helm chart, the example function deployed on the Python runtime and invoked. Leaves the
# cluster up;
# `make cluster-down` ends it.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=e2e/cluster/cluster.sh
in_node() { "$cluster" exec -- "$@"; }

echo "==> cluster binaries and base image (built once, then cached)" >&2
e2e/cluster/build.sh >/dev/null
e2e/images/build.sh base
echo "==> single-node cluster" >&2
"$cluster" up
echo "==> Lambdalet's images: the operator and the Python runtime" >&2
operator/image/build.sh
runtime-images/build.sh

echo "==> Lambdalet, installed with its Helm chart" >&2
in_node helm upgrade --install lambdalet charts/lambdalet -n lambdalet-system --create-namespace \
    --wait --timeout 120s --set operator.image.pullPolicy=Never --set runtime.pullPolicy=Never
in_node kubectl get pods -n lambdalet-system

echo "==> the example function" >&2
in_node kubectl create namespace demo --dry-run=client -o yaml | in_node kubectl apply -f -
in_node kubectl apply -n demo -f examples/hello-python/function.yaml
in_node kubectl wait -n demo fn/hello-python --for=condition=Ready --timeout=60s
in_node kubectl get fn -n demo
in_node kubectl get deployment,service,configmap -n demo -l app.kubernetes.io/managed-by=lambdalet

echo "==> one instance, as the autoscaler would start on a first request, and an invocation" >&2
in_node kubectl patch deployment fn-hello-python -n demo --subresource=scale --type=merge \
    -p '{"spec":{"replicas":1}}' --field-manager=lambdalet-autoscaler
in_node kubectl wait -n demo fn/hello-python --for=condition=Active --timeout=90s
pod_ip="$(in_node kubectl get pods -n demo -l lambdalet.dev/function=hello-python \
    -o jsonpath='{.items[0].status.podIP}')"
in_node curl -sS -X POST "http://$pod_ip:8080/2015-03-31/functions/function/invocations" \
    -d '{"rawPath": "/", "queryStringParameters": {"name": "demo"}}'
echo
in_node kubectl logs -n demo -l lambdalet.dev/function=hello-python --tail=5

cat >&2 <<'MSG'

hello-python answered from its pod. Try:
  e2e/cluster/cluster.sh exec -- kubectl get fn -A
  e2e/cluster/cluster.sh exec -- kubectl describe fn -n demo hello-python
Stop everything with: make cluster-down
MSG
