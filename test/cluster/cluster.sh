#!/usr/bin/env bash
# A real single-node Kubernetes for the end-to-end tests: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd + runc, a kubelet whose pods really run,
# kube-proxy (nftables) and CoreDNS, so Services and cluster DNS work and the chart installs
# unmodified.
#
#   cluster.sh up    [RUN]   build what is missing (cached), start, wait for the node and DNS
#   cluster.sh down  [RUN]   stop everything and remove what `up` made
#   cluster.sh image [RUN]   build the project's image from the Dockerfile with BuildKit and
#                            import it into the node's containerd (ghcr.io/ghoststack/vault:e2e)
#   cluster.sh import RUN SRC          import an OCI layout directory or a Docker archive
#   cluster.sh tag RUN IMAGE NAME...   give an image of the node more names, as if pulled from
#                                      a registry under them (the docs' registry.example.com/...)
#
# Nothing of the host is changed. The whole cluster lives in one network namespace and one
# mount namespace, both held by a sleeping process and gone with it: the bridge, the pods'
# veths, kube-proxy's nftables rules, ip_forward, every mount (overlays, tmpfs volumes,
# /run/containerd) and the sysctls the kubelet insists on (read-only bind mounts of files
# holding the values it checks, so it never writes the host's). The host reaches the API
# server through a relay on 127.0.0.1 (its port in $RUN/api-port); the kubeconfig in
# $RUN/admin.kubeconfig points there. Pods' cgroups nest under the cgroup this script runs in.
#
# Inside the namespace: bridge vk0 10.88.0.1/24 (the node IP, pods' gateway), Services
# 10.96.0.0/16, cluster DNS 10.96.0.10, API server 10.88.0.1:6443 (Service 10.96.0.1:443).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CMD=${1:-}
RUN=${2:-${VAULT_CLUSTER_RUN:-/tmp/vault-cluster}}
NODE=vault-e2e
BRIDGE=vk0 GW=10.88.0.1 POD_CIDR=10.88.0.0/24 SERVICE_CIDR=10.96.0.0/16 DNS_IP=10.96.0.10
IMAGE=ghcr.io/ghoststack/vault:e2e

log() { printf '[cluster %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAIL: $*"; log "logs in $RUN/logs"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (namespaces, cgroups, mounts inside its own namespace)"

assets() {
  ASSETS=$(bash "$ROOT/test/assets/build.sh")
  # VAULT_NODE_ASSETS names a directory laid out as build-node.sh makes it, used as it is.
  NODE_ASSETS=${VAULT_NODE_ASSETS:-$(bash "$ROOT/test/assets/build-node.sh")}
  BIN=$NODE_ASSETS/bin CNIBIN=$NODE_ASSETS/cni IMAGES=$NODE_ASSETS/images
  KUBECTL=${TEST_ASSET_KUBECTL:-$ASSETS/kubectl}
  export PATH="$BIN:$PATH"
}

pid_of() { [ -f "$RUN/pids/$1.pid" ] && cat "$RUN/pids/$1.pid"; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
in_ns() { nsenter -t "$(pid_of ns)" -m -n -- "$@"; }
# start NAME CMD...: detached, inside the namespaces, output to $RUN/logs/NAME.log
start() {
  local name=$1
  shift
  setsid nsenter -t "$(pid_of ns)" -m -n -- "$@" >"$RUN/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/pids/$name.pid"
}
wait_for() { # what timeout_s cmd...
  local what=$1 t=$2 i
  shift 2
  for ((i = 0; i < t * 2; i++)); do
    if "$@" >/dev/null 2>&1; then
      log "$what: ready after $((i / 2)) s"
      return 0
    fi
    sleep 0.5
  done
  die "$what: not ready after $t s"
}
kubectl_() { "$KUBECTL" --kubeconfig "$RUN/admin.kubeconfig" "$@"; }

# The cgroup the caller runs in, per hierarchy (cgroup v1 hybrid): pods nest below the memory
# cgroup of the tests, so their memory is charged where the tests' is. The kubelet takes one
# path for every hierarchy, so the same relative path is made in each; it is named after the
# run directory, so two clusters can run side by side.
cgroup_root() {
  local parent
  parent=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
  [ -n "$parent" ] || parent=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
  echo "${parent%/}/vault-e2e-$(basename "$RUN")"
}

make_pki() {
  local pki=$RUN/pki
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 7 -subj /CN=vault-e2e-ca 2>/dev/null
    sign() { # name subject extensions
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -out "$1.crt" \
        -extfile <(printf '%b' "$3") 2>/dev/null
      rm -f "$1.csr"
    }
    local client="extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment"
    sign apiserver /CN=kube-apiserver "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,IP:$GW,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment"
    sign kubelet-serving "/CN=$NODE" "subjectAltName=IP:$GW,DNS:$NODE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment"
    sign admin /O=system:masters/CN=vault-e2e-admin "$client"
    sign kubelet "/O=system:nodes/CN=system:node:$NODE" "$client"
    sign kube-proxy /CN=system:kube-proxy "$client"
    sign controller-manager /CN=system:kube-controller-manager "$client"
    sign scheduler /CN=system:kube-scheduler "$client"
    sign apiserver-kubelet-client /O=system:masters/CN=kube-apiserver-kubelet-client "$client"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

kubeconfig() { # file server user
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vault-e2e
  cluster: {server: "$2", certificate-authority: "$RUN/pki/ca.crt"}
users:
- name: $3
  user: {client-certificate: "$RUN/pki/$3.crt", client-key: "$RUN/pki/$3.key"}
contexts:
- name: vault-e2e
  context: {cluster: vault-e2e, user: $3, namespace: default}
current-context: vault-e2e
EOF
}

write_configs() {
  local inside="https://$GW:6443" c
  for c in kubelet kube-proxy controller-manager scheduler; do
    kubeconfig "$RUN/$c.kubeconfig" "$inside" "$c"
  done
  kubeconfig "$RUN/admin-inside.kubeconfig" "$inside" admin

  mkdir -p "$RUN/cni/net.d" "$RUN/cni/ipam"
  cat >"$RUN/cni/net.d/10-vault-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "vault-e2e",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$RUN/cni/ipam",
              "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$GW"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF

  mkdir -p "$RUN/containerd"
  cat >"$RUN/containerd/config.toml" <<EOF
version = 3
root = "$RUN/containerd/root"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "$RUN/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "10010"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "docker.io/local/pause:1"

[plugins."io.containerd.cri.v1.runtime"]
  netns_mounts_under_state_dir = true
  # Without CAP_SYS_RESOURCE nobody may lower oom_score_adj below 0, and the pause
  # container's -998 would fail every sandbox: clamp to containerd's own value.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$BIN/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$CNIBIN"]
    conf_dir = "$RUN/cni/net.d"
    max_conf_num = 1
EOF

  printf 'nameserver 127.0.0.53\n' >"$RUN/resolv.conf"
  mkdir -p "$RUN/kubelet"
  cat >"$RUN/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $GW
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $RUN/pki/kubelet-serving.crt
tlsPrivateKeyFile: $RUN/pki/kubelet-serving.key
containerRuntimeEndpoint: unix://$RUN/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: $(cgroup_root)
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
protectKernelDefaults: true
podLogsDir: /var/log/pods
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$RUN/pki/ca.crt"}
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: $RUN/resolv.conf
maxPods: 60
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF

  cat >"$RUN/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: "$RUN/kube-proxy.kubeconfig"}
hostnameOverride: $NODE
clusterCIDR: $POD_CIDR
bindAddress: $GW
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Pods and the API server share one bridge and no br_netfilter: masquerading every Service
# connection sends the replies back through the namespace's own netfilter to be un-NATed.
nftables: {masqueradeAll: true}
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
nodePortAddresses: ["$GW/32"]
EOF
}

import_image() { # OCI layout directory or archive
  local src=$1 tar
  if [ -d "$src" ]; then
    tar=$(mktemp --suffix=.tar)
    tar -C "$src" -cf "$tar" .
    in_ns "$BIN/ctr" --address "$RUN/containerd/containerd.sock" -n k8s.io images import --no-unpack=false "$tar" >/dev/null
    rm -f "$tar"
  else
    in_ns "$BIN/ctr" --address "$RUN/containerd/containerd.sock" -n k8s.io images import "$src" >/dev/null
  fi
}

# etcd, etcdctl and etcdutl of one release, without a shell: what registry.k8s.io/etcd holds.
etcd_image() {
  local dir=$NODE_ASSETS/images/etcd-tools w
  [ -d "$dir" ] && return
  # shellcheck source=../assets/oci-image.sh
  . "$ROOT/test/assets/oci-image.sh"
  w=$(mktemp -d)
  mkdir -p "$w/usr/local/bin" "$w/tmp" "$w/var/lib/etcd"
  cp "$ASSETS/etcd" "$ASSETS/etcdctl" "$ASSETS/etcdutl" "$w/usr/local/bin/"
  oci_image docker.io/local/etcd:3.6 "$w" "$dir" '["/usr/local/bin/etcd"]'
  rm -rf "$w"
}

cluster_addons() {
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: system:coredns}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: system:coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:coredns}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 5
        loop
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: coredns
        image: docker.io/local/coredns:1
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}}
        resources: {requests: {cpu: 20m, memory: 32Mi}, limits: {memory: 128Mi}}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
---
# The default StorageClass: statically provisioned volumes (directories under the run's state),
# as a single-node cluster without a provisioner has them.
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-static
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
  local i
  for i in $(seq 0 7); do
    mkdir -p "$RUN/volumes/pv$i"
    # The pods that use these run as their own non-root uids; a hostPath volume gets no
    # fsGroup ownership, so the directory is open to all, like /tmp.
    chmod 1777 "$RUN/volumes/pv$i"
    kubectl_ apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: local-pv$i}
spec:
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: local-static
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: "$RUN/volumes/pv$i", type: Directory}
EOF
  done
}

up() {
  assets
  for f in "$RUN"/pids/*.pid; do
    [ -e "$f" ] || continue
    alive "$(cat "$f")" && die "already running ($f): run cluster.sh down $RUN first"
  done
  rm -rf "$RUN"
  mkdir -p "$RUN"/{pids,logs,varlog,sysctl,volumes}
  local t0=$SECONDS
  echo "$BIN" >"$RUN/bin-dir"
  make_pki
  write_configs
  etcd_image

  # The namespaces, held by a sleeping process.
  setsid unshare --mount --net --propagation private -- sleep infinity </dev/null >/dev/null 2>&1 &
  echo $! >"$RUN/pids/ns.pid"
  local nspid i
  nspid=$(pid_of ns)
  for i in $(seq 1 50); do
    [ "$(readlink "/proc/$nspid/ns/net")" != "$(readlink /proc/self/ns/net)" ] && break
    sleep 0.1
  done
  in_ns ip link set lo up
  in_ns ip link add "$BRIDGE" type bridge
  in_ns ip addr add "$GW/24" dev "$BRIDGE"
  in_ns ip link set "$BRIDGE" up
  # The node's own route to Service addresses (a real node's default route): the API server
  # calls webhooks by ClusterIP, and kube-proxy rewrites those connections after routing.
  in_ns ip route add "$SERVICE_CIDR" dev "$BRIDGE"
  # In this namespace only: the node routes between pods and Service addresses.
  in_ns sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
  in_ns mkdir -p /run/containerd
  in_ns mount -t tmpfs -o mode=0711 tmpfs /run/containerd
  in_ns mount --bind "$RUN/varlog" /var/log
  # The kubelet checks these host-wide sysctls and would write them; it reads these files instead.
  local kv k f
  for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
    kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
    k=${kv%=*} f=$RUN/sysctl/${k//\//.}
    echo "${kv#*=}" >"$f"
    in_ns mount --bind "$f" "/proc/sys/$k"
    in_ns mount -o remount,bind,ro "/proc/sys/$k"
  done

  start etcd "$ASSETS/etcd" --name e2e --data-dir "$RUN/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster e2e=http://127.0.0.1:2380 --log-level warn --quota-backend-bytes 4294967296
  wait_for etcd 60 in_ns curl -fsS http://127.0.0.1:2379/health

  local pki=$RUN/pki
  start kube-apiserver "$ASSETS/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address 0.0.0.0 --secure-port 6443 --advertise-address "$GW" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --api-audiences https://kubernetes.default.svc.cluster.local \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --allow-privileged=true --profiling=false --v=1
  start relay-inside node "$HERE/../support/relay.mjs" "unix:$RUN/api.sock" "tcp:$GW:6443"
  setsid node "$HERE/../support/relay.mjs" tcp:127.0.0.1:0 "unix:$RUN/api.sock" "$RUN/api-port" >"$RUN/logs/relay-host.log" 2>&1 </dev/null &
  echo $! >"$RUN/pids/relay-host.pid"
  for i in $(seq 1 50); do [ -s "$RUN/api-port" ] && break; sleep 0.1; done
  kubeconfig "$RUN/admin.kubeconfig" "https://127.0.0.1:$(cat "$RUN/api-port")" admin
  wait_for kube-apiserver 120 kubectl_ get --raw /readyz

  start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$RUN/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$RUN/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$RUN/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --controllers '*' --profiling=false --v=1
  start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig "$RUN/scheduler.kubeconfig" \
    --authentication-kubeconfig "$RUN/scheduler.kubeconfig" \
    --authorization-kubeconfig "$RUN/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --profiling=false --v=1

  start containerd "$BIN/containerd" --config "$RUN/containerd/config.toml"
  wait_for containerd 60 in_ns "$BIN/ctr" --address "$RUN/containerd/containerd.sock" version
  local img
  for img in pause busybox coredns etcd-tools; do import_image "$IMAGES/$img"; done

  local cg h
  cg=$(cgroup_root)
  for h in /sys/fs/cgroup/*/; do
    [ "$h" = /sys/fs/cgroup/unified/ ] && continue
    mkdir -p "$h${cg#/}"
  done
  if [ -d /sys/fs/cgroup/cpuset ]; then # a new v1 cpuset cgroup starts empty: copy down the parent's
    local path="" part
    for part in ${cg//\// }; do
      path="$path/$part"
      cat "/sys/fs/cgroup/cpuset$(dirname "$path")/cpuset.cpus" >"/sys/fs/cgroup/cpuset$path/cpuset.cpus" 2>/dev/null || true
      cat "/sys/fs/cgroup/cpuset$(dirname "$path")/cpuset.mems" >"/sys/fs/cgroup/cpuset$path/cpuset.mems" 2>/dev/null || true
    done
  fi
  echo "$cg" >"$RUN/cgroup-root"

  start kubelet env PATH="$BIN:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" "$BIN/kubelet" \
    --config "$RUN/kubelet/config.yaml" --kubeconfig "$RUN/kubelet.kubeconfig" \
    --root-dir "$RUN/kubelet" --hostname-override "$NODE" --node-ip "$GW" --v=1
  start kube-proxy "$BIN/kube-proxy" --config "$RUN/kube-proxy.yaml" --v=1
  wait_for "node $NODE" 180 kubectl_ wait --for=condition=Ready "node/$NODE" --timeout=1s
  cluster_addons
  wait_for "cluster DNS" 180 kubectl_ -n kube-system wait --for=condition=Available deploy/coredns --timeout=1s
  log "cluster up in $((SECONDS - t0)) s; export KUBECONFIG=$RUN/admin.kubeconfig"
}

stop() { # name [timeout_s]
  local pid t=${2:-20} i
  pid=$(pid_of "$1") || return 0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < t * 10; i++)); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$RUN/pids/$1.pid"
}

down() {
  [ -d "$RUN/pids" ] || return 0
  local node_assets bin sock
  stop kubelet 30
  sock=$RUN/containerd/containerd.sock
  bin=$(cat "$RUN/bin-dir" 2>/dev/null || echo /nonexistent)
  if alive "$(pid_of containerd)" && [ -x "$bin/ctr" ]; then
    # Stop every container while containerd still runs, so CNI DEL removes the veths.
    local ids
    ids=$(in_ns "$bin/ctr" --address "$sock" -n k8s.io tasks ls -q 2>/dev/null || true)
    for id in $ids; do in_ns "$bin/ctr" --address "$sock" -n k8s.io tasks kill -s KILL "$id" >/dev/null 2>&1 || true; done
  fi
  stop kube-proxy 10
  stop containerd 20
  local f p
  for f in "$RUN"/containerd/state/io.containerd.runtime.v2.task/*/*/shim.pid; do
    [ -f "$f" ] || continue
    p=$(cat "$f")
    alive "$p" && grep -q containerd-shim "/proc/$p/cmdline" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  done
  # Whatever still runs in the node's cgroups (containers whose shim is gone).
  local cg
  cg=$(cat "$RUN/cgroup-root" 2>/dev/null || true)
  if [ -n "$cg" ] && [ -d "/sys/fs/cgroup/pids$cg" ]; then
    find "/sys/fs/cgroup/pids$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r p; do
      kill -KILL "$p" 2>/dev/null
    done
  fi
  stop kube-scheduler 10
  stop kube-controller-manager 10
  stop relay-host 5
  stop relay-inside 5
  stop kube-apiserver 20
  stop etcd 10
  # The namespaces end with their last process: the bridge, veths, nftables rules and every
  # mount made inside go with them.
  stop ns 5
  sleep 0.5
  if [ -n "$cg" ]; then
    local h
    for h in /sys/fs/cgroup/*/; do
      [ -d "$h${cg#/}" ] && find "$h${cg#/}" -depth -type d -exec rmdir {} \; 2>/dev/null
      [ -d "$h${cg#/}" ] && log "WARNING: cgroup $h${cg#/} not removed"
    done
  fi
  if [ "${VAULT_CLUSTER_KEEP:-}" != 1 ]; then rm -rf "$RUN"; fi
  log "cluster down"
}

image() {
  assets
  bash "$HERE/build-image.sh" "$RUN/vault-image.tar"
  import_image "$RUN/vault-image.tar"
  rm -f "$RUN/vault-image.tar"
  log "imported $IMAGE"
}

tag() { # IMAGE NAME...
  local src=$1 name
  shift
  for name in "$@"; do
    in_ns "$BIN/ctr" --address "$RUN/containerd/containerd.sock" -n k8s.io images tag --force "$src" "$name" >/dev/null
  done
}

case $CMD in
  up) up ;;
  down) down ;;
  image) image ;;
  import) assets && import_image "${3:?usage: cluster.sh import RUN SRC}" ;;
  tag) assets && tag "${3:?usage: cluster.sh tag RUN IMAGE NAME...}" "${@:4}" ;;
  *) echo "usage: cluster.sh up|down|image|import|tag [RUN] ..." >&2; exit 2 ;;
esac
