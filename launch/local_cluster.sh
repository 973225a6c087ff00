#!/usr/bin/env bash
# A Ray cluster of several real nodes on this one machine: each node is a Linux network
# namespace with its own address and an interface named eth0, joined to the others by a
# veth link on a bridge. Needs root (CAP_NET_ADMIN). Addresses come from the benchmarking
# range 198.18.0.0/15 only: node K is 198.18.0.(K+1), the machine itself (the bridge) is
# 198.18.0.254, where services every node must reach (an S3 API server) listen.
#
#   launch/local_cluster.sh up N        N nodes: ray head in node 0, ray workers in 1..N-1
#   launch/local_cluster.sh add K       start node K and join it to the cluster (a replacement)
#   launch/local_cluster.sh kill K      kill every process of node K (its raylet, its workers)
#   launch/local_cluster.sh cut K       take node K's link down (the network fails, processes live)
#   launch/local_cluster.sh exec K CMD  run CMD inside node K (e.g. a driver on the head)
#   launch/local_cluster.sh status      the nodes, their addresses, `ray status` from the head
#   launch/local_cluster.sh down        kill everything, delete namespaces, links, bridge, temp dirs
#
# Settings (environment): GANDIST_CLUSTER_PREFIX (default gd: namespaces gd-node0..,
# bridge gd-br0), GANDIST_CLUSTER_DIR (default /tmp/gandist-cluster-$PREFIX), NODE_CPUS
# (logical CPUs per node, default 1), RAY (the ray executable, default the one beside
# this repository's .venv python), HEAD_PORT (6379), DASHBOARD_PORT (8265).
# Ray's health checks are set so that a lost node is noticed in seconds, not the default
# 30 s (RAY_health_check_* below; override them in the environment).
set -euo pipefail

PREFIX=${GANDIST_CLUSTER_PREFIX:-gd}
DIR=${GANDIST_CLUSTER_DIR:-/tmp/gandist-cluster-$PREFIX}
NODE_CPUS=${NODE_CPUS:-1}
HEAD_PORT=${HEAD_PORT:-6379}
DASHBOARD_PORT=${DASHBOARD_PORT:-8265}
BRIDGE=$PREFIX-br0
HOST_IP=198.18.0.254
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RAY=${RAY:-$HERE/.venv/bin/ray}
export RAY_health_check_period_ms=${RAY_health_check_period_ms:-1000}
export RAY_health_check_timeout_ms=${RAY_health_check_timeout_ms:-1000}
export RAY_health_check_failure_threshold=${RAY_health_check_failure_threshold:-3}
export RAY_USAGE_STATS_ENABLED=0
# Jobs run `python` from the node's PATH: the environment Ray runs in, as in a node's image.
PATH="$(dirname "$RAY"):$PATH"
# The nodes are reachable only from this machine (a private bridge): no token to hand around.
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}

die() { echo "local_cluster: $*" >&2; exit 2; }
ns() { echo "$PREFIX-node$1"; }
node_ip() { echo "198.18.0.$(( $1 + 1 ))"; }
head_address() { echo "$(node_ip 0):$HEAD_PORT"; }

check_dir() {  # Ray's Unix sockets live under it, and a socket path has at most 107 bytes
  [ ${#DIR} -le 40 ] || die "GANDIST_CLUSTER_DIR=$DIR is ${#DIR} characters; Ray's socket paths under it would pass the 107-byte limit. Use a directory of at most 40 characters, e.g. /tmp/gdc"
}

check_root() {
  command -v ip >/dev/null || die "the 'ip' command (iproute2) is missing; install it (apt-get install iproute2)"
  [ "$(id -u)" -eq 0 ] || die "needs root (CAP_NET_ADMIN) to create network namespaces; run it with sudo"
  [ -x "$RAY" ] || die "no ray executable at $RAY; run 'make venv' first, or set RAY=/path/to/ray"
}

check_index() {
  [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -lt 250 ] || die "node index '$1' must be a number from 0 to 249"
}

make_bridge() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    # A fixed MAC: a bridge left to itself takes the lowest MAC of its ports, so adding a node
    # could change it under the others' ARP caches and stall their traffic to the host for
    # seconds (an S3 request from the head timed out so while a replacement node joined).
    ip link add "$BRIDGE" address 02:67:64:00:00:01 type bridge
    ip addr add "$HOST_IP/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
}

make_node() {  # namespace, veth pair (host end on the bridge, node end renamed eth0), address
  local k=$1 name; name=$(ns "$1")
  ip netns list | grep -qw "^$name" && die "node $k ($name) exists already; 'down' first, or use another index"
  ip netns add "$name"
  ip link add "$PREFIX-v$k" type veth peer name eth0 netns "$name"
  ip link set "$PREFIX-v$k" master "$BRIDGE" up
  ip netns exec "$name" ip addr add "$(node_ip "$k")/24" dev eth0
  ip netns exec "$name" ip link set eth0 up
  ip netns exec "$name" ip link set lo up
  mkdir -p "$DIR/n$k"
}

start_ray() {  # head for node 0, a worker joining the head otherwise
  local k=$1 name; name=$(ns "$1")
  # Each node its own temp dir (sessions, logs, sockets), as separate machines would have.
  local common=(--node-ip-address "$(node_ip "$k")" --num-cpus "$NODE_CPUS" --disable-usage-stats
                --temp-dir "$DIR/n$k")
  if [ "$k" -eq 0 ]; then
    ip netns exec "$name" "$RAY" start --head --port "$HEAD_PORT" "${common[@]}" \
      --include-dashboard true --dashboard-host 0.0.0.0 --dashboard-port "$DASHBOARD_PORT" \
      >"$DIR/n$k/ray-start.log" 2>&1 || { cat "$DIR/n$k/ray-start.log" >&2; die "ray head did not start"; }
  else
    ip netns exec "$name" "$RAY" start --address "$(head_address)" "${common[@]}" \
      >"$DIR/n$k/ray-start.log" 2>&1 || { cat "$DIR/n$k/ray-start.log" >&2; die "node $k did not join"; }
  fi
}

alive_nodes() {  # how many nodes the head's GCS counts as alive
  ip netns exec "$(ns 0)" "$RAY" status --address "$(head_address)" 2>/dev/null | grep -c "^ [0-9]* node_" || true
}

wait_for_nodes() {  # until the cluster has $1 alive nodes, or 120 s
  local want=$1 waited=0
  while [ "$(alive_nodes)" -lt "$want" ]; do
    [ $waited -ge 120 ] && die "only $(alive_nodes) of $want nodes alive after 120 s; see $DIR/n*/ray-start.log"
    sleep 1; waited=$((waited + 1))
  done
}

kill_node() {  # every process in the namespace, at once (a node that dies does not clean up)
  local name; name=$(ns "$1")
  local pids; pids=$(ip netns pids "$name" 2>/dev/null || true)
  [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
}

nodes() { ip netns list | awk '{print $1}' | grep "^$PREFIX-node[0-9]*$" | sed "s/^$PREFIX-node//" | sort -n || true; }

down() {
  local k
  for k in $(nodes); do kill_node "$k"; done
  sleep 0.5  # let the kernel reap them before the namespaces go
  for k in $(nodes); do kill_node "$k"; ip netns del "$(ns "$k")" 2>/dev/null || true; done
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -rf "$DIR"
}

cmd=${1:-}
case "$cmd" in
  up)
    n=${2:?usage: local_cluster.sh up N}
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || die "N='$n' must be a number of nodes >= 1"
    check_root
    check_dir
    down  # leftovers of an earlier run that did not finish
    trap 'down' EXIT  # a failed start leaves nothing behind
    mkdir -p "$DIR"
    make_bridge
    for k in $(seq 0 $((n - 1))); do make_node "$k"; done
    start_ray 0
    for k in $(seq 1 $((n - 1))); do start_ray "$k"; done
    wait_for_nodes "$n"
    trap - EXIT
    echo "cluster up: $n nodes, head $(head_address), dashboard http://$(node_ip 0):$DASHBOARD_PORT, host $HOST_IP"
    ;;
  add)
    k=${2:?usage: local_cluster.sh add K}; check_index "$k"; check_root
    ip link show "$BRIDGE" >/dev/null 2>&1 || die "no cluster is up (no bridge $BRIDGE); run 'up N' first"
    make_node "$k"
    start_ray "$k"  # returns once the node's raylet has registered with the head
    echo "node $k up at $(node_ip "$k")"
    ;;
  kill)
    k=${2:?usage: local_cluster.sh kill K}; check_index "$k"
    kill_node "$k"
    echo "node $k killed"
    ;;
  cut)
    k=${2:?usage: local_cluster.sh cut K}; check_index "$k"
    ip link set "$PREFIX-v$k" down
    echo "node $k cut off"
    ;;
  exec)
    k=${2:?usage: local_cluster.sh exec K CMD...}; check_index "$k"; shift 2
    exec ip netns exec "$(ns "$k")" "$@"
    ;;
  status)
    for k in $(nodes); do echo "node $k: $(ns "$k") $(node_ip "$k")"; done
    ip netns exec "$(ns 0)" "$RAY" status --address "$(head_address)"
    ;;
  down)
    check_root
    down
    echo "cluster down"
    ;;
  *)
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
    [ -z "$cmd" ] || [ "$cmd" = "-h" ] || [ "$cmd" = "--help" ] || exit 2
    ;;
esac
