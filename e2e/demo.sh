#!/usr/bin/env bash
# `make demo`: a real single-node Kubernetes built from source, Lambdalet installed on it with
# its Helm chart (release `lambdalet` in `lambdalet-system`, as README.md installs it), the
# example function deployed on the Python runtime and invoked from zero, then warm. Fails on any
# error: a step that fails, a pod that is not ready, an answer that is not 200 with the hello
# message. Leaves the cluster up; `make cluster-down` ends it. CI runs it as written (the `demo`
# tier of e2e/run-tests.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=e2e/cluster/cluster.sh
cache="${LAMBDALET_CACHE:-$HOME/.cache/lambdalet}"
in_node() { "$cluster" exec -- "$@"; }

started=$SECONDS
step_started=$SECONDS
clock() { printf '%d:%02d' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)); }
# step TEXT: a line per step, with the time since `make demo` started.
step() {
    step_started=$SECONDS
    printf '\n==> [%s] %s\n' "$(clock)" "$*" >&2
}
# done_step [NOTE]: how long the step took, and what it left for the next run.
done_step() { printf '    done in %d s%s\n' $((SECONDS - step_started)) "${1:+; $1}" >&2; }

# On failure, show what the cluster says before the error ends the run.
diagnose() {
    local status=$?
    ((status == 0)) && return
    printf '\n==> [%s] make demo FAILED (exit %d); the cluster as it is:\n' "$(clock)" "$status" >&2
    if "$cluster" status >/dev/null 2>&1; then
        in_node kubectl get pods -A -o wide >&2 || true
        in_node kubectl get events -n lambdalet-system --sort-by=.lastTimestamp >&2 || true
        in_node kubectl logs -n lambdalet-system --all-containers --prefix --tail=20 \
            -l app.kubernetes.io/instance=lambdalet >&2 || true
        in_node kubectl get fn -A -o wide >&2 || true
    fi
}
trap diagnose EXIT

step "cluster binaries: Kubernetes, etcd, Helm and CoreDNS from their Go modules" \
    "(about 9 minutes on 2 cores the first time)"
bin="$(e2e/cluster/build.sh)"
done_step "cached in $bin; the next run reuses it"

step "the Debian base image, with debootstrap (a few minutes the first time)"
e2e/images/build.sh base
done_step "cached in $cache/buildah; rebuilt only when its inputs change"

step "the single-node cluster (containerd, etcd, kube-apiserver, kubelet, CoreDNS)"
"$cluster" up
done_step

step "Lambdalet's images: the operator, and the runtimes (CPython 3.12 is built from source" \
    "and Node is fetched the first time: about 3 minutes)"
operator/image/build.sh
runtime-images/build.sh
done_step "Python packages, CPython, Node and the images cached in $cache; the next run only imports them"

step "Lambdalet, installed with its Helm chart: release lambdalet in lambdalet-system"
in_node helm upgrade --install lambdalet charts/lambdalet -n lambdalet-system --create-namespace \
    --wait --timeout 180s --set operator.image.pullPolicy=Never --set runtime.pullPolicy=Never
in_node kubectl wait pods -n lambdalet-system -l app.kubernetes.io/instance=lambdalet \
    --for=condition=Ready --timeout=120s
in_node kubectl get pods -n lambdalet-system
done_step

step "the example function, examples/hello-python, in namespace demo"
in_node kubectl create namespace demo --dry-run=client -o yaml | in_node kubectl apply -f -
in_node kubectl apply -n demo -f examples/hello-python/function.yaml
in_node kubectl wait -n demo fn/hello-python --for=condition=Ready --timeout=60s
in_node kubectl get fn -n demo
in_node kubectl get deployment,service,configmap -n demo -l app.kubernetes.io/managed-by=lambdalet
done_step

activator="$(in_node kubectl get service lambdalet-activator -n lambdalet-system \
    -o jsonpath='{.spec.clusterIP}')"
# kube-proxy programs a new Service a moment after the pods are ready: wait until it connects.
for _ in $(seq 30); do
    in_node curl -s -o /dev/null --max-time 5 "http://$activator/" && break
    sleep 1
done
# invoke NAME: GET the function through the activator's Service; fails unless the answer is 200
# with the hello message for NAME. Prints the body, the status and the time taken.
invoke() {
    local out body
    out="$(in_node curl -sS --fail-with-body --max-time 90 -w '\n%{http_code} in %{time_total} s' \
        "http://$activator/fn/demo/hello-python/?name=$1")" ||
        { printf '%s\n' "$out"; echo "demo: the request for $1 failed" >&2; return 1; }
    printf '%s\n' "$out"
    body="$(head -n -1 <<<"$out")"
    [[ "$body" == *"\"message\": \"hello, $1\""* ]] ||
        { echo "demo: expected the message \"hello, $1\", got: $body" >&2; return 1; }
}

step "a first request through the activator: the function scales from zero to answer it"
before="$(in_node kubectl get deployment fn-hello-python -n demo -o jsonpath='{.spec.replicas}')"
echo "replicas before: $before"
[[ "$before" == 0 ]] || echo "(already running from an earlier run: this request is warm)"
invoke demo
echo "replicas after: $(in_node kubectl get deployment fn-hello-python -n demo -o jsonpath='{.spec.replicas}')"
done_step

step "a second, warm request"
invoke again
# The pod answered as soon as its runtime was initialised (it announces itself to the
# activators); the kubelet reports it running a moment later, and only then has it a log. (A
# second pod the autoscaler may have started meanwhile has none yet.)
pod=""
for _ in $(seq 30); do
    pod="$(in_node kubectl get pods -n demo -l lambdalet.dev/function=hello-python \
        --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}' 2>/dev/null)" && break
    sleep 1
done
in_node kubectl logs -n demo "$pod" --tail=5
done_step

trap - EXIT
cat >&2 <<MSG

==> [$(clock)] done. hello-python scaled from zero to answer, and goes back to zero after 60 idle
seconds. Try:
  e2e/cluster/cluster.sh exec -- kubectl get fn -A -w
  e2e/cluster/cluster.sh exec -- curl 'http://$activator/fn/demo/hello-python/?name=you'
  e2e/cluster/cluster.sh exec -- kubectl describe fn -n demo hello-python
Stop everything with: make cluster-down (the builds stay cached in $cache)
MSG
