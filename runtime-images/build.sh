#!/usr/bin/env bash
# Build the runtime images and import them into the test node's containerd:
#
#   runtime-images/build.sh [TAG]     localhost/lambdalet-runtime-python3.11:TAG and
#                                     localhost/lambdalet-runtime-nodejs20:TAG (default TAG: the
#                                     package version, which the operator asks for by default)
#
# The agent is a static Go binary (standard library only, so no downloads); the images are built
# by e2e/images/build.sh with buildah on the Debian base image, which must exist
# (e2e/images/build.sh base). Debian bookworm has no Node 20: the Node image gets the build
# machine's own node binary (NODE=/path/to/node to pick another), which must be Node 20.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
tag="${1:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/operator/lambdalet/__init__.py")}"

# The Node binary goes into the build context (nodejs/node, gitignored) before any image is built
# from that context, and only when it differs, so an unchanged one keeps both images cached.
node="${NODE:-$(command -v node || true)}"
[[ -n "$node" && -x "$node" ]] || { echo "build.sh: no node (put Node 20 on PATH or set NODE)" >&2; exit 1; }
node="$(readlink -f "$node")"
major="$("$node" -p 'process.versions.node.split(".")[0]')"
[[ "$major" == 20 ]] || { echo "build.sh: $node is Node $major, not Node 20" >&2; exit 1; }
cmp -s "$node" "$here/nodejs/node" || install -m 0755 "$node" "$here/nodejs/node"

(cd "$here/agent" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o agent .)
"$repo/e2e/images/build.sh" file "$here" "$here/python/Containerfile" \
    "localhost/lambdalet-runtime-python3.11:$tag" RUNTIME=python3.11

"$repo/e2e/images/build.sh" file "$here" "$here/nodejs/Containerfile" \
    "localhost/lambdalet-runtime-nodejs20:$tag" RUNTIME=nodejs20 NODE_MAJOR=20

"$repo/e2e/images/build.sh" file "$here" "$here/provided/Containerfile" \
    "localhost/lambdalet-runtime-provided:$tag"
