#!/usr/bin/env bash
# Build localhost/lambdalet-operator:TAG (default: the package version) without a registry or
# network access inside the build: the package and its pinned dependencies (constraints.txt) are
# installed on this machine into a build context, then copied onto the Debian base image.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tag="${1:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/operator/lambdalet/__init__.py")}"
python="${PYTHON:-$repo/.venv/bin/python}"

# The base image's CPython is 3.11: binary wheels must match it.
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
    { echo "operator image: needs Python 3.11 to install for the base image" >&2; exit 1; }

context="${LAMBDALET_CACHE:-$HOME/.cache/lambdalet}/operator-image"
# Reinstall only when the package or its pins changed: the install needs the package index, and
# later calls (from inside the node's network namespace, say) only re-import the image.
inputs="$(cd "$repo" && find operator/lambdalet pyproject.toml constraints.txt -type f \
    ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
if [[ "$(cat "$context/.inputs" 2>/dev/null)" != "$inputs" ]]; then
    rm -rf "$context"
    mkdir -p "$context"
    "$python" -m pip install --quiet --no-compile --target "$context/site" \
        -c "$repo/constraints.txt" "$repo"
    find "$context/site" -name '__pycache__' -prune -exec rm -rf {} +
    echo "$inputs" >"$context/.inputs"
fi
cp "$here/Containerfile" "$context/"
"$repo/e2e/images/build.sh" file "$context" "$context/Containerfile" "localhost/lambdalet-operator:$tag"
