#!/usr/bin/env bash
# The real-cluster test bed: a single Kubernetes node built from upstream sources, run as plain
# background processes inside a network namespace of its own.
#
#   e2e/cluster/cluster.sh up               build (or reuse) binaries, start everything, wait Ready
#   e2e/cluster/cluster.sh down             stop everything this script started; idempotent
#   e2e/cluster/cluster.sh exec -- CMD...   run CMD inside the node's network namespace, with
#                                           KUBECONFIG and PATH set (kubectl, helm, pytest, curl)
#   e2e/cluster/cluster.sh run NAME -- CMD  start CMD in the background inside the namespace,
#                                           like a component: logs/NAME.log, stopped by `down`
#   e2e/cluster/cluster.sh status           print what is running
#   e2e/cluster/cluster.sh env              print shell exports for KUBECONFIG and PATH
#
# Profiles (LAMBDALET_CLUSTER_PROFILE):
#   node          etcd, kube-apiserver, controller-manager, scheduler, containerd, CNI bridge,
#                 kubelet, kube-proxy, CoreDNS — in the network namespace $NETNS (default).
#   controlplane  etcd, kube-apiserver and kube-controller-manager only, on 127.0.0.1 of the
#                 caller's network namespace: the lighter bed for operator tests.
#
# Network layout of the node profile (nothing here is routed outside the machine):
#   netns $NETNS: lo, veth lmbd0 (node IP 10.200.0.2/24) paired with lmbd1 (10.200.0.1/24),
#   cni0 bridge for pods (10.244.0.0/24), a route for the service range (10.96.0.0/16) and no
#   default route. The root namespace gets blackhole routes for the node, pod and service ranges,
#   so a client that forgot to enter the namespace fails at once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=e2e/cluster/versions.env
. "$here/versions.env"

PROFILE="${LAMBDALET_CLUSTER_PROFILE:-node}"
NETNS="${LAMBDALET_NETNS:-lambdalet-node}"
NODE_NAME="lambdalet-node"
NODE_IP="10.200.0.2"
PEER_IP="10.200.0.1"
NODE_RANGE="10.200.0.0/24"
CLUSTER_CIDR="10.244.0.0/16"
POD_CIDR="10.244.0.0/24"
SERVICE_CIDR="10.96.0.0/16"
KUBERNETES_SVC_IP="10.96.0.1"
DNS_IP="10.96.0.10"

if [[ "$PROFILE" == controlplane ]]; then
    STATE="${LAMBDALET_CLUSTER_STATE:-/var/lib/lambdalet-e2e/controlplane}"
    API_IP="127.0.0.1"
    API_PORT="${LAMBDALET_CP_API_PORT:-16443}"
    ETCD_CLIENT_PORT="${LAMBDALET_CP_ETCD_PORT:-12379}"
    ETCD_PEER_PORT=$((ETCD_CLIENT_PORT + 1))
    CM_PORT=$((API_PORT + 1))
else
    STATE="${LAMBDALET_CLUSTER_STATE:-/var/lib/lambdalet-e2e/node}"
    API_IP="$NODE_IP"
    API_PORT=6443
    ETCD_CLIENT_PORT=2379
    ETCD_PEER_PORT=2380
    CM_PORT=10257
fi
PIDS="$STATE/pids"
LOGS="$STATE/logs"
PKI="$STATE/pki"
KUBECONFIG_FILE="$STATE/admin.kubeconfig"
CONTAINERD_SOCK="$STATE/containerd/containerd.sock"

log() { printf '[cluster %s +%3ds] %s\n' "$PROFILE" "$SECONDS" "$*" >&2; }
die() { printf '[cluster %s] error: %s\n' "$PROFILE" "$*" >&2; exit 1; }

bin_dir() { "$here/build.sh" "$@"; }

# Run a command in the node's network namespace. `ip netns exec` is avoided on purpose: it
# remounts /sys, after which the kubelet cannot find its cgroup mounts.
in_ns() {
    if [[ "$PROFILE" == controlplane ]]; then "$@"; else nsenter --net="/run/netns/$NETNS" -- "$@"; fi
}

# A handle on the root network namespace, taken the first time the script runs there, so the
# guard routes land in it even when a later call (a test session bringing the node up) runs
# inside the node's namespace.
ROOT_NETNS="$STATE.root-netns"
in_root() { nsenter --net="$ROOT_NETNS" -- "$@"; }

# start NAME CMD...: start a long-running component in the background, remembering its pid.
start() {
    local name="$1"; shift
    mkdir -p "$PIDS" "$LOGS"
    if [[ -f "$PIDS/$name" ]] && kill -0 "$(cat "$PIDS/$name")" 2>/dev/null; then
        log "$name already running"
        return 0
    fi
    # The subshell execs setsid, which execs nsenter, which execs the component: $! is its pid,
    # and it leads a process group of its own.
    if [[ "$PROFILE" == controlplane ]]; then
        (exec setsid "$@") >"$LOGS/$name.log" 2>&1 </dev/null &
    else
        (exec setsid nsenter --net="/run/netns/$NETNS" -- "$@") >"$LOGS/$name.log" 2>&1 </dev/null &
    fi
    echo $! >"$PIDS/$name"
}

# wait_for DESCRIPTION TIMEOUT CMD...: poll CMD until it succeeds.
wait_for() {
    local what="$1" timeout="$2"; shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "timed out after ${timeout}s waiting for $what; last log lines:"
            tail -n 20 "$LOGS"/*.log >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.2
    done
}

kc() { in_ns "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# --------------------------------------------------------------------------- network namespace

netns_up() {
    [[ "$PROFILE" == controlplane ]] && return 0
    mount --make-rshared / 2>/dev/null || true
    if [[ ! -e "/run/netns/$NETNS" ]]; then
        log "network namespace $NETNS"
        ip netns add "$NETNS"
    fi
    if ! mountpoint -q "$ROOT_NETNS"; then
        [[ "$(stat -L -c %i /proc/self/ns/net)" != "$(stat -L -c %i "/run/netns/$NETNS")" ]] ||
            die "first run of $0 must be from the root network namespace"
        mkdir -p "$(dirname "$ROOT_NETNS")"
        touch "$ROOT_NETNS"
        mount --bind /proc/self/ns/net "$ROOT_NETNS"
    fi
    in_ns ip link set lo up
    if ! in_ns ip link show lmbd0 >/dev/null 2>&1; then
        # No `dummy` link type on this kernel: a veth pair whose both ends stay in the namespace
        # gives the node an ordinary interface to carry its IP.
        in_ns ip link add lmbd0 type veth peer name lmbd1
        in_ns ip addr add "$NODE_IP/24" dev lmbd0
        in_ns ip addr add "$PEER_IP/24" dev lmbd1
    fi
    in_ns ip link set lmbd0 up
    in_ns ip link set lmbd1 up
    in_ns ip route replace "$SERVICE_CIDR" dev lmbd0 src "$NODE_IP"
    in_ns sysctl -qw net.ipv4.ip_forward=1
    in_ns sysctl -qw net.ipv4.conf.all.route_localnet=1
    # Guard the outside network: these ranges only exist inside the namespace. The routes go into
    # the root namespace (PID 1's), also when this script itself runs inside the node's.
    local range
    for range in "$NODE_RANGE" "$CLUSTER_CIDR" "$SERVICE_CIDR"; do
        in_root ip route replace blackhole "$range"
    done
}

netns_down() {
    [[ "$PROFILE" == controlplane ]] && return 0
    local range
    for range in "$NODE_RANGE" "$CLUSTER_CIDR" "$SERVICE_CIDR"; do
        in_root ip route del blackhole "$range" 2>/dev/null || true
    done
    if [[ -e "/run/netns/$NETNS" ]]; then
        ip netns delete "$NETNS" 2>/dev/null || { umount "/run/netns/$NETNS" 2>/dev/null; rm -f "/run/netns/$NETNS"; }
    fi
    if mountpoint -q "$ROOT_NETNS"; then umount "$ROOT_NETNS"; fi
    rm -f "$ROOT_NETNS"
    # `ip netns add` bind-mounts /run/netns onto itself; undo that once no namespace is left.
    if mountpoint -q /run/netns && [[ -z "$(ls -A /run/netns)" ]]; then umount /run/netns || true; fi
}

# --------------------------------------------------------------------------- certificates

pki() {
    [[ -f "$PKI/done" ]] && return 0
    log "certificates and tokens"
    mkdir -p "$PKI"
    local o="$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=lambdalet-e2e-ca" \
        -keyout "$o/ca.key" -out "$o/ca.crt" 2>/dev/null
    # signed NAME SUBJECT [SAN]: a key and a certificate signed by the cluster CA.
    signed() {
        local name="$1" subj="$2" san="${3:-}"
        openssl req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$o/$name.key" -out "$o/$name.csr" 2>/dev/null
        local ext="$o/$name.ext"
        {
            echo "basicConstraints=CA:FALSE"
            echo "keyUsage=critical,digitalSignature,keyEncipherment"
            if [[ -n "$san" ]]; then
                echo "extendedKeyUsage=serverAuth,clientAuth"
                echo "subjectAltName=$san"
            else
                echo "extendedKeyUsage=clientAuth"
            fi
        } >"$ext"
        openssl x509 -req -in "$o/$name.csr" -CA "$o/ca.crt" -CAkey "$o/ca.key" -CAcreateserial \
            -days 3650 -extfile "$ext" -out "$o/$name.crt" 2>/dev/null
        rm -f "$o/$name.csr" "$ext"
    }
    signed apiserver "/CN=kube-apiserver" \
        "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:$KUBERNETES_SVC_IP"
    signed apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
    signed kubelet "/CN=$NODE_NAME" "DNS:$NODE_NAME,IP:$NODE_IP,IP:127.0.0.1"
    openssl genrsa -out "$o/sa.key" 2048 2>/dev/null
    openssl rsa -in "$o/sa.key" -pubout -out "$o/sa.pub" 2>/dev/null
    # Static bearer tokens, one per identity: simpler than client certificates, same RBAC subjects.
    local admin operator kubelet proxy cm sched
    admin="$(openssl rand -hex 16)"; kubelet="$(openssl rand -hex 16)"; proxy="$(openssl rand -hex 16)"
    cm="$(openssl rand -hex 16)"; sched="$(openssl rand -hex 16)"; operator="$(openssl rand -hex 16)"
    # lambdalet-operator: an identity of its own for an operator run from outside the cluster,
    # so the audit log tells its requests apart.
    cat >"$o/tokens.csv" <<EOF
$admin,lambdalet-admin,uid-admin,"system:masters"
$operator,lambdalet-operator,uid-operator,"system:masters"
$kubelet,system:node:$NODE_NAME,uid-kubelet,"system:nodes"
$proxy,system:kube-proxy,uid-proxy
$cm,system:kube-controller-manager,uid-cm
$sched,system:kube-scheduler,uid-sched
EOF
    kubeconfig admin "$admin"
    kubeconfig operator "$operator"
    kubeconfig kubelet "$kubelet"
    kubeconfig kube-proxy "$proxy"
    kubeconfig controller-manager "$cm"
    kubeconfig scheduler "$sched"
    cp "$PKI/admin.kubeconfig" "$KUBECONFIG_FILE"
    touch "$PKI/done"
}

# kubeconfig NAME TOKEN: write $PKI/NAME.kubeconfig for one identity.
kubeconfig() {
    local name="$1" token="$2" file="$PKI/$1.kubeconfig"
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: lambdalet-e2e
  cluster:
    server: https://$API_IP:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $name
  user:
    token: $token
contexts:
- name: lambdalet-e2e
  context: {cluster: lambdalet-e2e, user: $name}
current-context: lambdalet-e2e
EOF
}

# --------------------------------------------------------------------------- control plane

control_plane_up() {
    log "etcd $ETCD_VERSION"
    start etcd "$BIN/etcd" --name lambdalet --data-dir "$STATE/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "lambdalet=http://127.0.0.1:$ETCD_PEER_PORT" \
        --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
    wait_for etcd 30 in_ns "$BIN/etcdctl" --endpoints "http://127.0.0.1:$ETCD_CLIENT_PORT" endpoint health

    log "kube-apiserver $KUBERNETES_VERSION"
    # Audit every write (metadata only): tests count the writes a component sends.
    cat >"$STATE/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
EOF
    start kube-apiserver "$BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --advertise-address "$API_IP" --bind-address "$API_IP" --secure-port "$API_PORT" \
        --service-cluster-ip-range "$SERVICE_CIDR" \
        --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
        --client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/tokens.csv" \
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
        --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types InternalIP \
        --audit-policy-file "$STATE/audit-policy.yaml" --audit-log-path "$LOGS/audit.log" \
        --audit-log-maxsize 200 --audit-log-maxbackup 1 \
        --allow-privileged=true --profiling=false --v=1
    wait_for kube-apiserver 60 kc get --raw /readyz

    log "kube-controller-manager"
    start kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig "$PKI/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$PKI/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$PKI/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$CM_PORT" \
        --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
        --use-service-account-credentials=true --leader-elect=false \
        --kube-api-qps 100 --kube-api-burst 200 \
        --cluster-cidr "$CLUSTER_CIDR" --service-cluster-ip-range "$SERVICE_CIDR" \
        --controllers '*,-nodeipam,-cloud-node-lifecycle' --profiling=false --v=1
}

# --------------------------------------------------------------------------- node

node_up() {
    log "kube-scheduler"
    start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$PKI/scheduler.kubeconfig" \
        --authentication-kubeconfig "$PKI/scheduler.kubeconfig" \
        --authorization-kubeconfig "$PKI/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1

    log "containerd (CRI, cgroupfs) and the CNI bridge"
    mkdir -p "$STATE/containerd" "$STATE/cni/net.d" "$STATE/cni/cache"
    cat >"$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:3.10"
  # Root lacks CAP_SYS_RESOURCE here: without this, runc fails to set the kubelet's
  # oom_score_adj of -998 and every sandbox dies with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
    cat >"$STATE/cni/net.d/10-lambdalet.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "lambdalet",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]],
               "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$STATE/cni/ipam"}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
    start containerd containerd --config "$STATE/containerd/config.toml"
    wait_for containerd 30 ctr -a "$CONTAINERD_SOCK" version
    "$repo/e2e/images/build.sh" pause

    log "kubelet"
    mkdir -p "$STATE/kubelet" "$STATE/pod-logs"
    printf 'nameserver %s\n' "$DNS_IP" >"$STATE/resolv.conf"
    cat >"$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $STATE/resolv.conf
podLogsDir: $STATE/pod-logs
failSwapOn: false
# Keep locally imported images: they cannot be pulled again from anywhere.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
maxPods: 250
serializeImagePulls: false
syncFrequency: 10s
EOF
    start kubelet "$BIN/kubelet" --config "$STATE/kubelet/config.yaml" \
        --kubeconfig "$PKI/kubelet.kubeconfig" --root-dir "$STATE/kubelet" \
        --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=1

    log "kube-proxy (iptables)"
    cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
clientConnection: {kubeconfig: $PKI/kube-proxy.kubeconfig}
# Leave the host's conntrack sysctls alone: they are not namespaced and root may not set them.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
    in_ns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
    start kube-proxy "$BIN/kube-proxy" --config "$STATE/kube-proxy.yaml" --v=1

    log "waiting for the node to be Ready"
    wait_for "node Ready" 120 kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
    in_ns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
}

coredns_up() {
    log "CoreDNS $COREDNS_VERSION"
    "$repo/e2e/images/build.sh" coredns
    sed "s/@COREDNS_VERSION@/$COREDNS_VERSION/" "$here/coredns.yaml" | kc apply -f - >/dev/null
    wait_for "CoreDNS rollout" 120 kc -n kube-system rollout status deployment/coredns --timeout=2s
}

# --------------------------------------------------------------------------- commands

cmd_up() {
    local t0=$SECONDS
    log "building or reusing binaries"
    if [[ "$PROFILE" == controlplane ]]; then BIN="$(bin_dir etcd kubernetes)"; else BIN="$(bin_dir)"; fi
    export PATH="$BIN:$PATH"
    mkdir -p "$STATE"
    netns_up
    pki
    control_plane_up
    if [[ "$PROFILE" == node ]]; then
        node_up
        coredns_up
    fi
    write_env
    log "ready in $((SECONDS - t0)) s; KUBECONFIG=$KUBECONFIG_FILE"
}

write_env() {
    cat >"$STATE/env" <<EOF
export KUBECONFIG=$KUBECONFIG_FILE
export LAMBDALET_OPERATOR_KUBECONFIG=$PKI/operator.kubeconfig
export LAMBDALET_AUDIT_LOG=$LOGS/audit.log
export PATH=$BIN:\$PATH
export LAMBDALET_CLUSTER_PROFILE=$PROFILE
export LAMBDALET_NETNS=$NETNS
export LAMBDALET_CONTAINERD_SOCK=$CONTAINERD_SOCK
EOF
}

# stop NAME...: SIGTERM to each component's process group, SIGKILL to what is left after a grace
# period (kube-apiserver can hang on SIGTERM once etcd is gone). Only pids this script recorded
# are touched; the components of one call stop in parallel.
stop() {
    local name pid pids=() names=()
    for name in "$@"; do
        [[ -f "$PIDS/$name" ]] || continue
        pid="$(cat "$PIDS/$name")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$name")
        fi
        rm -f "$PIDS/$name"
    done
    ((${#pids[@]})) || return 0
    local deadline=$((SECONDS + 5)) alive
    while ((SECONDS < deadline)); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    log "stopped ${names[*]}"
}

# Kill every container of the node: first the pods' processes (found by cgroup), then the
# containerd shims that belong to this containerd (found by its socket address).
kill_pods() {
    local procs pid
    for procs in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/memory/kubepods; do
        [[ -d "$procs" ]] || continue
        while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done \
            < <(find "$procs" -name cgroup.procs -exec cat {} + 2>/dev/null)
    done
    pkill -KILL -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null || true
    sleep 0.2
    # Empty pod cgroups left behind by the kubelet, deepest first.
    local ctl
    for ctl in /sys/fs/cgroup/*/kubepods; do
        if [[ -d "$ctl" ]]; then find "$ctl" -depth -type d -exec rmdir {} \; 2>/dev/null || true; fi
    done
}

unmount_state() {
    # Everything mounted below the state directory (pod volumes, overlay rootfs, shm), deepest first.
    local m
    for _ in 1 2 3; do
        while read -r m; do umount -l "$m" 2>/dev/null || true; done \
            < <(awk -v s="$STATE/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    done
    # Pod network namespaces that containerd mounted under /run/netns.
    for m in /run/netns/cni-*; do
        [[ -e "$m" ]] || continue
        umount "$m" 2>/dev/null || true
        rm -f "$m"
    done
}

cmd_down() {
    log "tearing down"
    local n f extra=()
    # Extra processes started with `run` (an operator, say) go first, with the node agents.
    for f in "$PIDS"/*; do
        [[ -e "$f" ]] || continue
        n="$(basename "$f")"
        case "$n" in
            etcd | kube-* | kubelet | containerd) ;;
            *) extra+=("$n") ;;
        esac
    done
    stop "${extra[@]}" kube-proxy kubelet
    if [[ "$PROFILE" == node ]]; then kill_pods; fi
    stop containerd kube-scheduler kube-controller-manager kube-apiserver etcd
    if [[ "$PROFILE" == node ]]; then kill_pods; unmount_state; fi
    netns_down
    if [[ -d "$STATE" ]]; then
        rm -rf "$STATE" 2>/dev/null || { unmount_state; rm -rf "$STATE"; }
    fi
    log "down"
}

cmd_status() {
    local f
    [[ -d "$PIDS" ]] || { echo "not running"; return 1; }
    for f in "$PIDS"/*; do
        if kill -0 "$(cat "$f")" 2>/dev/null; then echo "$(basename "$f"): running ($(cat "$f"))"
        else echo "$(basename "$f"): DEAD"; fi
    done
}

cmd_exec() {
    [[ "${1:-}" == "--" ]] && shift
    if [[ -f "$STATE/env" ]]; then
        # shellcheck disable=SC1091
        . "$STATE/env"
    else
        # Not up yet: enter an empty namespace, so a test session can bring the node up from
        # inside it (the binaries must be built already; the namespace has no way out).
        netns_up
        BIN="$(bin_dir etcd kubernetes helm 2>/dev/null)"
        export PATH="$BIN:$PATH"
    fi
    if [[ "$PROFILE" == controlplane ]]; then exec "$@"; fi
    exec nsenter --net="/run/netns/$NETNS" -- "$@"
}

cmd_run() {
    local name="${1:?usage: run NAME -- CMD...}"; shift
    [[ "${1:-}" == "--" ]] && shift
    [[ -f "$STATE/env" ]] || die "cluster is not up (run: $0 up)"
    # shellcheck disable=SC1091
    . "$STATE/env"
    start "$name" "$@"
    log "started $name (log: $LOGS/$name.log)"
}

case "${1:-}" in
    up) cmd_up ;;
    run) shift; cmd_run "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) [[ -f "$STATE/env" ]] && cat "$STATE/env" ;;
    exec) shift; cmd_exec "$@" ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac
