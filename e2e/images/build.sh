#!/usr/bin/env bash
# Container images without a registry: build with buildah (vfs storage, no daemon) and import the
# result into the test node's containerd (`k8s.io` namespace). Pods use `imagePullPolicy: Never`.
#
#   e2e/images/build.sh pause                     localhost/pause:3.10 (static C, FROM scratch)
#   e2e/images/build.sh base                      localhost/lambdalet-base:bookworm (debootstrap)
#   e2e/images/build.sh coredns                   localhost/coredns:<version> (FROM scratch)
#   e2e/images/build.sh file CONTEXT FILE TAG [BUILD-ARG=VALUE...]
#                                                 any Containerfile, e.g. a runtime image
#
# Images are cached in buildah's storage under $LAMBDALET_CACHE; an image is rebuilt only when its
# inputs change (a content hash is stored as a label). Every call (re)imports into containerd when
# LAMBDALET_CONTAINERD_SOCK or the node's socket exists.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=e2e/cluster/versions.env
. "$here/../cluster/versions.env"
CACHE="${LAMBDALET_CACHE:-$HOME/.cache/lambdalet}"
SOCK="${LAMBDALET_CONTAINERD_SOCK:-/var/lib/lambdalet-e2e/node/containerd/containerd.sock}"
BASE_SUITE=bookworm
BASE_PACKAGES="python3,ca-certificates"
# Bump when the way the base image is made changes (its inputs above are hashed with it).
BASE_RECIPE=1
BASE_MIRROR="${LAMBDALET_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { printf '[images] %s\n' "$*" >&2; }
bah() { buildah --storage-driver vfs --root "$CACHE/buildah/root" --runroot "$CACHE/buildah/run" "$@"; }

# built TAG HASH: true when buildah holds TAG built from inputs hashing to HASH.
built() {
    [[ "$(bah inspect --type image --format '{{index .OCIv1.Config.Labels "dev.lambdalet.inputs"}}' "$1" 2>/dev/null)" == "$2" ]]
}

# import TAG: copy the image into containerd, if the node is up.
import() {
    local tag="$1" archive
    [[ -S "$SOCK" ]] || { log "containerd socket $SOCK absent: $tag built, not imported"; return 0; }
    archive="$CACHE/images/$(echo "$tag" | tr '/:' '__').tar"
    mkdir -p "$CACHE/images"
    if [[ ! -f "$archive" || "$archive" -ot "$CACHE/images/.stamp-$(echo "$tag" | tr '/:' '__')" ]]; then
        rm -f "$archive"
        bah push --quiet "$tag" "docker-archive:$archive:$tag" >/dev/null
        touch "$archive"
    fi
    ctr -a "$SOCK" -n k8s.io images import --no-unpack=false "$archive" >/dev/null
    log "imported $tag"
}

# from_rootfs TAG HASH CONFIG... : commit a scratch container after the caller populated it.
commit() {
    local ctr="$1" tag="$2" hash="$3"
    bah config --label "dev.lambdalet.inputs=$hash" "$ctr" >/dev/null
    bah commit --quiet --rm "$ctr" "$tag" >/dev/null
    prune
    touch "$CACHE/images/.stamp-$(echo "$tag" | tr '/:' '__')"
    log "built $tag"
}

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# prune: remove the images a rebuild left without a tag (buildah keeps them until told).
prune() { bah rmi --prune >/dev/null 2>&1 || true; }

image_pause() {
    local tag=localhost/pause:3.10 hash
    hash="$(hash_of "$here/pause/pause.c" "$0")"
    mkdir -p "$CACHE/images"
    if ! built "$tag" "$hash"; then
        local out="$CACHE/images/pause-bin"
        gcc -static -Os -o "$out" "$here/pause/pause.c"
        strip "$out"
        local ctr
        ctr="$(bah from --quiet scratch)"
        bah copy "$ctr" "$out" /pause >/dev/null
        bah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr" >/dev/null
        commit "$ctr" "$tag" "$hash"
    fi
    import "$tag"
}

image_base() {
    local tag=localhost/lambdalet-base:$BASE_SUITE hash
    hash="$(echo "$BASE_RECIPE $BASE_SUITE $BASE_PACKAGES" | sha256sum | cut -c1-16)"
    mkdir -p "$CACHE/images"
    if ! built "$tag" "$hash"; then
        local root="$CACHE/images/base-rootfs" tarball="$CACHE/images/base-$hash.tar"
        if [[ ! -f "$tarball" ]]; then
            log "debootstrap $BASE_SUITE (about 2 minutes)"
            rm -rf "$root"
            debootstrap --variant=minbase --include="$BASE_PACKAGES" "$BASE_SUITE" "$root" "$BASE_MIRROR" \
                >"$CACHE/images/debootstrap.log" 2>&1 || { tail -20 "$CACHE/images/debootstrap.log" >&2; exit 1; }
            # Slim the image: package caches, docs and locales are of no use in a function pod.
            rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
                "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
            tar -C "$root" -cf "$tarball" .
            rm -rf "$root"
        fi
        local ctr
        ctr="$(bah from --quiet scratch)"
        bah add "$ctr" "$tarball" / >/dev/null
        bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            --env LANG=C.UTF-8 --cmd '["/bin/bash"]' "$ctr" >/dev/null
        commit "$ctr" "$tag" "$hash"
    fi
    import "$tag"
}

image_coredns() {
    local tag="localhost/coredns:$COREDNS_VERSION" bin hash
    bin="$("$here/../cluster/build.sh" coredns)/coredns"
    hash="$(hash_of "$bin" "$0")"
    if ! built "$tag" "$hash"; then
        local ctr
        ctr="$(bah from --quiet scratch)"
        bah copy "$ctr" "$bin" /coredns >/dev/null
        bah config --entrypoint '["/coredns"]' --user 65534:65534 "$ctr" >/dev/null
        commit "$ctr" "$tag" "$hash"
    fi
    import "$tag"
}

# image_file CONTEXT FILE TAG [ARG=VALUE...]: build a Containerfile (its FROM images must be
# local, e.g. localhost/lambdalet-base) and import it.
image_file() {
    local context="$1" file="$2" tag="$3"; shift 3
    local args=() a hash
    for a in "$@"; do args+=(--build-arg "$a"); done
    hash="$( (cd "$context" && find . -type f ! -path '*/__pycache__/*' ! -path '*/node_modules/*' -print0 \
        | sort -z | xargs -0 sha256sum; cat "$file"; echo "$*") | sha256sum | cut -c1-16)"
    mkdir -p "$CACHE/images"
    if ! built "$tag" "$hash"; then
        bah bud --quiet --pull-never --layers=false -f "$file" -t "$tag" \
            --label "dev.lambdalet.inputs=$hash" "${args[@]}" "$context" >/dev/null
        prune
        touch "$CACHE/images/.stamp-$(echo "$tag" | tr '/:' '__')"
        log "built $tag"
    fi
    import "$tag"
}

case "${1:-}" in
    pause) image_pause ;;
    base) image_base ;;
    coredns) image_coredns ;;
    file) shift; image_file "$@" ;;
    *) sed -n '2,16p' "$0" >&2; exit 2 ;;
esac
