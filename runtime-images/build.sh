#!/usr/bin/env bash
# Build the runtime images and import them into the test node's containerd:
#
#   runtime-images/build.sh [TAG]     localhost/lambdalet-runtime-python3.11:TAG (default: the
#                                     package version, which the operator asks for by default)
#
# The agent is a static Go binary (standard library only, so no downloads); the images are built
# by e2e/images/build.sh with buildah on the Debian base image, which must exist
# (e2e/images/build.sh base).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
tag="${1:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/operator/lambdalet/__init__.py")}"

(cd "$here/agent" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o agent .)
"$repo/e2e/images/build.sh" file "$here" "$here/python/Containerfile" \
    "localhost/lambdalet-runtime-python3.11:$tag" RUNTIME=python3.11
