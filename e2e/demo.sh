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
echo "==> Lambdalet's images: the operator and the runtimes" >&2
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

echo "==> a first request through the activator: the function scales from zero to answer it" >&2
activator="$(in_node kubectl get service lambdalet-activator -n lambdalet-system \
    -o jsonpath='{.spec.clusterIP}')"
in_node kubectl get deployment fn-hello-python -n demo -o jsonpath='replicas before: {.spec.replicas}{"\n"}'
in_node curl -sS --max-time 90 -w '\n%{http_code} in %{time_total} s\n' \
    "http://$activator/fn/demo/hello-python/?name=demo"
in_node kubectl get deployment fn-hello-python -n demo -o jsonpath='replicas after: {.spec.replicas}{"\n"}'
echo "==> a second, warm request" >&2
in_node curl -sS -w '\n%{http_code} in %{time_total} s\n' "http://$activator/fn/demo/hello-python/?name=again"
in_node kubectl logs -n demo -l lambdalet.dev/function=hello-python --tail=5

cat >&2 <<MSG

hello-python scaled from zero to answer, and goes back to zero after 60 idle seconds. Try:
  e2e/cluster/cluster.sh exec -- kubectl get fn -A -w
  e2e/cluster/cluster.sh exec -- curl 'http://$activator/fn/demo/hello-python/?name=you'
  e2e/cluster/cluster.sh exec -- kubectl describe fn -n demo hello-python
Stop everything with: make cluster-down
MSG
