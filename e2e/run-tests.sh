#!/usr/bin/env bash
# The whole test suite, tier by tier (README: `make test`):
#   1. static checks: ruff, mypy --strict, shellcheck, gofmt/go vet/go test, CRDs up to date
#   2. unit, component (the agent and runtimes as real processes) and control-plane tests (a
#      real kube-apiserver + etcd on loopback, started by pytest)
#   3. the bed's lifecycle: bring the single node up and down twice, nothing left behind
#   4. the documented path: `make demo` exactly as README.md says (release lambdalet in
#      lambdalet-system, the example invoked cold and warm), then every command block of README.md
#      on that cluster (e2e/test_readme.py); the cluster is torn down after
#   5. end to end on the real single-node cluster, from inside its network namespace
# Select tiers with TIERS="static unit lifecycle demo e2e" (default: all). Extra arguments go to
# pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin
tiers="${TIERS:-static unit lifecycle demo e2e}"
has() { [[ " $tiers " == *" $1 "* ]]; }
step() { printf '\n=== %s ===\n' "$*" >&2; }

if has lifecycle || has demo || has e2e; then
    step "cluster binaries and base images (cached in ${LAMBDALET_CACHE:-$HOME/.cache/lambdalet})"
    e2e/cluster/build.sh >/dev/null
    e2e/images/build.sh base
    # Built here, with network access; the e2e tier (inside the node's namespace) imports them.
    runtime-images/build.sh
    operator/image/build.sh
    # The brokers the event-source tests start in the node's namespace: MinIO (built from its Go
    # module) and ElasticMQ (from Maven Central) are fetched here.
    $PY/python -c 'from tests.kit.servers import elasticmq, minio
minio.binary(); elasticmq.class_path()'
fi

if has static; then
    step "static checks"
    python_trees=(operator tests e2e benchmarks runtime-images conftest.py)
    $PY/ruff check "${python_trees[@]}"
    $PY/ruff format --check "${python_trees[@]}"
    $PY/mypy
    $PY/mypy --strict runtime-images/python runtime-images/bench_warm.py benchmarks
    $PY/lambdalet crds --check
    $PY/lambdalet crds --check --output charts/lambdalet/crds
    "$(e2e/cluster/build.sh helm)/helm" lint --strict charts/lambdalet
    shellcheck -x e2e/cluster/*.sh e2e/images/build.sh e2e/run-tests.sh e2e/demo.sh \
        runtime-images/build.sh operator/image/build.sh .ci/run
    for module in runtime-images/agent benchmarks/loadgen; do
        (
            cd "$module"
            unformatted="$(gofmt -l .)"
            [[ -z "$unformatted" ]] || { echo "gofmt: $module: $unformatted" >&2; exit 1; }
            go vet ./...
            go test ./...
        )
    done
fi

if has unit; then
    step "unit and control-plane tests"
    $PY/pytest -m "not e2e and not lifecycle and not demo" "$@"
fi

if has lifecycle; then
    step "test bed lifecycle"
    $PY/pytest -m lifecycle "$@"
fi

if has demo; then
    step "the documented path: make demo, then README.md's commands"
    demo_started=$SECONDS
    trap 'e2e/cluster/cluster.sh down' EXIT
    make demo
    e2e/cluster/cluster.sh exec -- $PY/pytest -m demo e2e/test_readme.py "$@"
    e2e/cluster/cluster.sh down
    trap - EXIT
    echo "demo tier: $((SECONDS - demo_started)) s" >&2
fi

if has e2e; then
    step "end to end on the single-node cluster"
    trap 'e2e/cluster/cluster.sh down' EXIT
    e2e/cluster/cluster.sh up
    e2e/cluster/cluster.sh exec -- $PY/pytest -m e2e "$@"
fi
