#!/usr/bin/env bash
# Install the Debian packages the test beds need (idempotent; apt runs only when one is missing).
set -euo pipefail

packages=(
    containerd runc containernetworking-plugins iptables iproute2 conntrack socat util-linux
    buildah debootstrap gcc libc6-dev openssl ca-certificates psmisc curl
    redis-server rabbitmq-server nats-server shellcheck
    # ElasticMQ, the SQS-compatible server of the dispatcher's tests, comes from Maven Central.
    openjdk-17-jre-headless maven
    # CPython 3.12 of the python3.12 runtime image is built from source (runtime-images/python/
    # cpython.sh) against these; the base image has the matching shared libraries.
    make pkg-config libssl-dev libffi-dev zlib1g-dev libbz2-dev liblzma-dev libsqlite3-dev uuid-dev
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Go builds the cluster binaries and the function agent; Debian's golang is too old for them.
if ! go version 2>/dev/null | grep -qE 'go1\.(2[2-9]|[3-9][0-9])'; then
    echo "[deps] Go 1.22 or newer must be on PATH (found: $(go version 2>&1))" >&2
    exit 1
fi
if ((${#missing[@]})); then
    echo "[deps] installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Debian's service scripts must not start system-wide daemons: the tests start their own.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
