#!/usr/bin/env bash
# Install the Debian packages the test beds need (idempotent; apt runs only when one is missing).
set -euo pipefail

packages=(
    containerd runc containernetworking-plugins iptables iproute2 conntrack socat util-linux
    buildah debootstrap gcc libc6-dev openssl ca-certificates psmisc
    redis-server rabbitmq-server nats-server shellcheck
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
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
