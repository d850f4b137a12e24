#!/usr/bin/env bash
# Build the real-cluster binaries from their Go modules into a cache outside the repository.
#
#   e2e/cluster/build.sh            build what is missing, print the bin directory
#
# Output: $LAMBDALET_CACHE/bin/<stamp>/{kube-apiserver,kube-controller-manager,kube-scheduler,
# kubelet,kube-proxy,kubectl,etcd,etcdctl,helm,coredns}. The stamp encodes every pinned version,
# so a cached build is reused only when it matches versions.env.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=e2e/cluster/versions.env
. "$here/versions.env"

cache="${LAMBDALET_CACHE:-$HOME/.cache/lambdalet}"
stamp="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}_coredns-${COREDNS_VERSION}"
bin="$cache/bin/$stamp"
work="$cache/build"
mkdir -p "$bin" "$work"

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
log() { printf '[build] %s\n' "$*" >&2; }

build_kubernetes() {
    local names=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
    local missing=0
    for n in "${names[@]}"; do [[ -x "$bin/$n" ]] || missing=1; done
    ((missing)) || return 0
    log "kubernetes $KUBERNETES_VERSION (about 9 minutes on 2 cores from a cold cache)"
    local dir="$work/kubernetes"
    mkdir -p "$dir"
    (
        cd "$dir"
        go mod download "k8s.io/kubernetes@$KUBERNETES_VERSION"
        local upstream
        upstream="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod"
        {
            echo "module lambdalet.dev/e2e/kubernetes-build"
            echo
            echo "go 1.24"
            echo
            echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
            echo
            # k8s.io/kubernetes replaces its staging modules with ./staging paths that do not
            # exist in the module zip: pin each one the module graph needs to its published tag.
            local mod ver
            while read -r mod; do
                grep -qE "^[[:space:]]+$mod v" "$upstream" || continue
                ver="$STAGING_VERSION"
                for o in $STAGING_OVERRIDES; do
                    [[ "k8s.io/${o%%=*}" == "$mod" ]] && ver="${o#*=}"
                done
                echo "replace $mod => $mod $ver"
            done < <(awk '/=> \.\/staging\/src\// {print $1}' "$upstream")
        } >go.mod
        cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
        go mod tidy -e >/dev/null 2>&1 || true
        local minor="${KUBERNETES_VERSION#v1.}"
        minor="${minor%%.*}"
        local ld=""
        for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
            ld+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
            ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
        done
        local out="$work/kubernetes-out"
        mkdir -p "$out"
        go build -tags tools -trimpath -ldflags "-s -w $ld" -o "$out/" \
            k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
            k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
            k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
        for n in "${names[@]}"; do install -m 0755 "$out/$n" "$bin/$n"; done
    )
}

build_etcd() {
    [[ -x "$bin/etcd" && -x "$bin/etcdctl" ]] && return 0
    log "etcd $ETCD_VERSION"
    # etcd's own go.mod files carry replace directives, so `go install pkg@version` refuses them:
    # build from a small wrapper module instead.
    local dir="$work/etcd"
    mkdir -p "$dir/out"
    (
        cd "$dir"
        cat >go.mod <<MOD
module lambdalet.dev/e2e/etcd-build

go 1.23

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION
	go.etcd.io/etcd/etcdctl/v3 $ETCD_VERSION
)
MOD
        cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
GO
        go mod tidy -e >/dev/null 2>&1 || true
        go build -tags tools -trimpath -ldflags "-s -w" -o out/ go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3
    )
    install -m 0755 "$dir/out/server" "$bin/etcd"
    install -m 0755 "$dir/out/etcdctl" "$bin/etcdctl"
}

build_helm() {
    [[ -x "$bin/helm" ]] && return 0
    log "helm $HELM_VERSION"
    local gobin="$work/helm-bin"
    mkdir -p "$gobin"
    GOBIN="$gobin" go install -trimpath \
        -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
        "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    install -m 0755 "$gobin/helm" "$bin/helm"
}

build_coredns() {
    [[ -x "$bin/coredns" ]] && return 0
    log "coredns $COREDNS_VERSION"
    local gobin="$work/coredns-bin"
    mkdir -p "$gobin"
    GOBIN="$gobin" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
    install -m 0755 "$gobin/coredns" "$bin/coredns"
}

targets=("$@")
((${#targets[@]})) || targets=(etcd kubernetes helm coredns)
for t in "${targets[@]}"; do
    start=$SECONDS
    "build_$t"
    log "$t ready ($((SECONDS - start)) s)"
done
echo "$bin"
