#!/usr/bin/env bash
# Local Kubernetes control plane for end-to-end tests: etcd + kube-apiserver +
# kube-controller-manager + kube-scheduler, and KWOK simulating the nodes, all bound to 127.0.0.1,
# built by tools/e2e/bootstrap.sh. There are no kubelets: KWOK keeps the nodes that carry the annotation
# kwok.x-k8s.io/node=fake Ready and moves the pods bound to them to Running (and Job pods to
# Succeeded); the test creates those nodes. Test stacks still use skipAwait (no container runs).
#
#   tools/e2e/control-plane.sh start   start (no-op if already running), wait for /readyz
#   tools/e2e/control-plane.sh stop    stop everything this script started (pid files)
#   tools/e2e/control-plane.sh env     print the exports (KUBECONFIG, engine PATH/PULUMI_* ...)
#   tools/e2e/control-plane.sh status  exit 0 if the apiserver answers /readyz
#
# Environment:
#   NCP_E2E_STATE        state dir (default /tmp/ncp-e2e): pki/, etcd data, logs/, kubeconfig
#   NCP_ENGINE_BIN       dir with etcd/kube-apiserver/kube-controller-manager
#                        (default: asked from tools/e2e/bootstrap.sh --print-bin, which must have run)
#   NCP_E2E_ETCD_PORT    etcd client port (default 23790; peer port is +1)
#   NCP_E2E_API_PORT     kube-apiserver secure port (default 16443)
#   NCP_E2E_KCM_PORT     kube-controller-manager secure port (default 10357)
#   NCP_E2E_SCHEDULER_PORT kube-scheduler secure port (default 10359)
#   NCP_E2E_KWOK_PORT    KWOK's health/metrics server port (default 10247)
#   NCP_E2E_TIMEOUT      seconds to wait for readiness (default 120)
#   NCP_E2E_KWOK_CONFIG  extra KWOK config files, comma-separated (e.g. a ClusterLogs: what `kubectl logs` of the
#                        simulated pods returns; the API server reaches KWOK as each node's kubelet). Default: none.
#   NCP_E2E_ADMISSION_PLUGINS admission plugins enabled beyond the API server's defaults (default PodNodeSelector,
#                        which holds tenants to their node pools; preflight proves it is on). Set it empty to
#                        start a control plane that lacks it, as many managed clusters do.
#   NCP_E2E_COMPONENTS   all (default) or api: etcd, the kube-apiserver and the controller manager with its serving
#                        port off (three ports: etcd client and peer, API server; the controller manager still fills
#                        in ResourceQuota status, which the engine waits for), no scheduler and no KWOK: for tests
#                        that need several clusters' API surfaces at once and no pods (tests/e2e/test_fleet_e2e.py).
#   NCP_E2E_SCHEDULER_NAMES extra scheduler names the real kube-scheduler also answers to, as extra profiles
#                        (the tests pass KAI's: pods that name it are filtered and placed like any other;
#                        KAI's queues and gangs are not simulated). Default: none.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${NCP_E2E_STATE:-/tmp/ncp-e2e}"
ETCD_PORT="${NCP_E2E_ETCD_PORT:-23790}"
ETCD_PEER_PORT="$((ETCD_PORT + 1))"
API_PORT="${NCP_E2E_API_PORT:-16443}"
KCM_PORT="${NCP_E2E_KCM_PORT:-10357}"
SCHEDULER_PORT="${NCP_E2E_SCHEDULER_PORT:-10359}"
KWOK_PORT="${NCP_E2E_KWOK_PORT:-10247}"
# KWOK manages only the nodes with this annotation (the simulated GPU and CPU nodes the test creates).
KWOK_NODE_ANNOTATION="kwok.x-k8s.io/node=fake"
TIMEOUT="${NCP_E2E_TIMEOUT:-120}"
SCHEDULER_NAMES="${NCP_E2E_SCHEDULER_NAMES:-}"
ADMISSION_PLUGINS="${NCP_E2E_ADMISSION_PLUGINS-PodNodeSelector}"
COMPONENTS="${NCP_E2E_COMPONENTS:-all}"
[[ "$COMPONENTS" == all || "$COMPONENTS" == api ]] || { echo "control-plane: error: NCP_E2E_COMPONENTS=$COMPONENTS: use all or api" >&2; exit 2; }
PKI="$STATE/pki"
LOGS="$STATE/logs"
RUN="$STATE/run"
KUBECONFIG_PATH="$STATE/kubeconfig"
SERVICE_CIDR="10.0.0.0/24"

die() { echo "control-plane: error: $*" >&2; exit 1; }
log() { echo "control-plane: $*" >&2; }

engine_bin() {
  if [[ -n "${NCP_ENGINE_BIN:-}" ]]; then echo "$NCP_ENGINE_BIN"; return; fi
  "$HERE/bootstrap.sh" --print-bin
}

alive() { # alive NAME -> 0 if the pid in RUN/NAME.pid is running
  local f="$RUN/$1.pid"
  [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

token() { cat "$PKI/admin.token"; }

readyz() {
  curl -fsS --max-time 5 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(token)" \
    "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1
}

gen_pki() {
  mkdir -p "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=ncp-e2e-ca" \
    -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
  cat >"$PKI/apiserver.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$PKI/apiserver.key" -out "$PKI/apiserver.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 365 -extfile "$PKI/apiserver.ext" -out "$PKI/apiserver.crt" 2>/dev/null
  # Service-account token signing key pair.
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  # Static bearer tokens: an admin in system:masters, used by tests and the controller-manager.
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$PKI/admin.token"
  echo "$(token),ncp-e2e-admin,ncp-e2e-admin,system:masters" >"$PKI/tokens.csv"
  chmod 600 "$PKI"/*.key "$PKI/admin.token" "$PKI/tokens.csv"
}

write_kubeconfig() {
  local ca
  ca="$(base64 -w0 <"$PKI/ca.crt")"
  cat >"$KUBECONFIG_PATH" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ncp-e2e
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $ca
users:
- name: ncp-e2e-admin
  user:
    token: $(token)
contexts:
- name: ncp-e2e
  context:
    cluster: ncp-e2e
    user: ncp-e2e-admin
    namespace: default
current-context: ncp-e2e
EOF
  chmod 600 "$KUBECONFIG_PATH"
}

spawn() { # spawn NAME CMD... : start detached, remember the pid
  local name="$1"; shift
  local pidfile="$RUN/$name.pid"
  rm -f "$pidfile"
  # New session (survives this script and Ctrl-C in the caller); the inner shell records
  # its own pid and execs the server, so the pid file holds the server's pid.
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  for _ in $(seq 1 50); do [[ -s "$pidfile" ]] && return 0; sleep 0.1; done
  die "could not start $name"
}

wait_for() { # wait_for DESCRIPTION NAME CHECK-CMD...
  local what="$1" name="$2"; shift 2
  local deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    if ! alive "$name"; then
      tail -n 30 "$LOGS/$name.log" >&2 || true
      die "$name exited while waiting for $what (log: $LOGS/$name.log)"
    fi
    if ((SECONDS > deadline)); then
      tail -n 30 "$LOGS/$name.log" >&2 || true
      die "timed out after ${TIMEOUT}s waiting for $what (log: $LOGS/$name.log)"
    fi
    sleep 0.5
  done
}

etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"'; }

component_ready() { # component_ready PORT: a kube component's /readyz (anonymous access is allowed there)
  curl -fsSk --max-time 2 "https://127.0.0.1:$1/readyz" >/dev/null 2>&1
}

kwok_stages() { # the stage files of the kwok module the engine's kwok was built from, comma-separated
  local version dir
  version="$("$BIN/kwok" --version | awk '{print $3}')"
  dir="${NCP_ENGINE_CACHE:-$HOME/.cache/ncp-inference/engine}/gomod/sigs.k8s.io/kwok@$version/kustomize/stage"
  local files=("$dir/node/fast/node-initialize.yaml" "$dir/node/heartbeat/node-heartbeat.yaml"
               "$dir/pod/fast/pod-ready.yaml" "$dir/pod/fast/pod-complete.yaml" "$dir/pod/fast/pod-delete.yaml")
  for f in "${files[@]}"; do [[ -f "$f" ]] || return 1; done
  (IFS=,; echo "${files[*]}")
}

kwok_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz" >/dev/null 2>&1; }

default_sa_exists() {
  curl -fsS --max-time 5 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(token)" \
    "https://127.0.0.1:$API_PORT/api/v1/namespaces/default/serviceaccounts/default" >/dev/null 2>&1
}

port_in_use() { (: >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_free_ports() { # another control plane (a previous test module's, just stopped) may still hold a port
  local deadline=$((SECONDS + 30)) var port busy
  while :; do
    busy=()
    local vars=(ETCD_PORT ETCD_PEER_PORT API_PORT)
    [[ "$COMPONENTS" == api ]] || vars+=(KCM_PORT SCHEDULER_PORT KWOK_PORT)
    for var in "${vars[@]}"; do
      port="${!var}"
      port_in_use "$port" && busy+=("$var=$port")
    done
    ((${#busy[@]} == 0)) && return 0
    ((SECONDS > deadline)) && die "ports still in use after 30s: ${busy[*]}; stop the other control plane" \
      "(tools/e2e/control-plane.sh stop with its NCP_E2E_STATE) or choose free ports with NCP_E2E_*_PORT"
    sleep 1
  done
}

cmd_start() {
  if alive kube-apiserver && readyz; then
    log "already running (state $STATE)"
    return 0
  fi
  cmd_stop >/dev/null 2>&1 || true
  BIN="$(engine_bin)" || die "engine binaries not built: run tools/e2e/bootstrap.sh first"
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    [[ -x "$BIN/$b" ]] || die "missing $BIN/$b: run tools/e2e/bootstrap.sh"
  done
  command -v openssl >/dev/null || die "openssl is required"
  command -v curl >/dev/null || die "curl is required"

  wait_for_free_ports
  local t0=$SECONDS
  rm -rf "$STATE/etcd" "$PKI" "$LOGS" "$RUN"
  mkdir -p "$STATE" "$LOGS" "$RUN"
  gen_pki
  write_kubeconfig

  spawn etcd "$BIN/etcd" \
    --name ncp-e2e --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "ncp-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes 2147483648 --log-level warn
  wait_for "etcd health" etcd etcd_healthy

  spawn kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --cert-dir "$PKI" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --token-auth-file "$PKI/tokens.csv" \
    --authorization-mode RBAC \
    ${ADMISSION_PLUGINS:+--enable-admission-plugins "$ADMISSION_PLUGINS"} \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --allow-privileged=true \
    --service-account-issuer "https://kubernetes.default.svc.cluster.local" \
    --service-account-key-file "$PKI/sa.pub" \
    --service-account-signing-key-file "$PKI/sa.key" \
    --endpoint-reconciler-type none \
    --enable-priority-and-fairness=false \
    --kubelet-preferred-address-types InternalIP \
    --profiling=false --v 1
  wait_for "kube-apiserver /readyz" kube-apiserver readyz

  # Controller manager: namespace deletion (namespace controller), garbage collection,
  # default service accounts, workload controllers, node lifecycle (lifts the not-ready taint the
  # apiserver puts on new nodes once KWOK reports them Ready), the persistent-volume binder.
  # Talks to the apiserver as the admin.
  spawn kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$KUBECONFIG_PATH" \
    --bind-address 127.0.0.1 --secure-port "$([[ "$COMPONENTS" == api ]] && echo 0 || echo "$KCM_PORT")" \
    --cert-dir "$STATE/kcm-certs" \
    --leader-elect=false \
    --controllers "*,-nodeipam,-cloud-node-lifecycle,-service,-route,-attachdetach,-persistentvolume-expander,-ttl" \
    --service-account-private-key-file "$PKI/sa.key" \
    --root-ca-file "$PKI/ca.crt" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --use-service-account-credentials=false \
    --profiling=false --v 1
  wait_for "the default service account (controller-manager running)" kube-controller-manager default_sa_exists
  if [[ "$COMPONENTS" == api ]]; then
    log "ready in $((SECONDS - t0))s (no scheduler, no KWOK): https://127.0.0.1:$API_PORT (kubeconfig $KUBECONFIG_PATH)"
    return 0
  fi

  # The real scheduler: node selectors, tolerations, resources, priorities, volume binding; one profile per
  # scheduler name (kube-scheduler's KubeSchedulerConfiguration profiles, kubescheduler.config.k8s.io/v1).
  {
    echo "apiVersion: kubescheduler.config.k8s.io/v1"
    echo "kind: KubeSchedulerConfiguration"
    echo "clientConnection: {kubeconfig: \"$KUBECONFIG_PATH\"}"
    echo "leaderElection: {leaderElect: false}"
    echo "enableProfiling: false"
    echo "profiles:"
    for name in default-scheduler $SCHEDULER_NAMES; do echo "  - schedulerName: $name"; done
  } >"$STATE/scheduler-config.yaml"
  spawn kube-scheduler "$BIN/kube-scheduler" \
    --config "$STATE/scheduler-config.yaml" \
    --authentication-kubeconfig "$KUBECONFIG_PATH" --authorization-kubeconfig "$KUBECONFIG_PATH" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" \
    --cert-dir "$STATE/scheduler-certs" --v 1
  wait_for "kube-scheduler /readyz" kube-scheduler component_ready "$SCHEDULER_PORT"

  # KWOK's controller only (no kwokctl cluster): simulated node heartbeats and pod lifecycle. Each node it
  # initialises gets 127.0.0.1 and KWOK's port as its kubelet address, so the API server's pods/log reaches KWOK's
  # server (TLS, self-signed: the API server does not verify kubelets without --kubelet-certificate-authority).
  # Out of a kwokctl cluster it needs its stages as config: its own "fast" node and pod stages
  # (pods Running, Job pods Succeeded, deletion honoured) and the node heartbeat, read in place
  # from the kwok module bootstrap.sh built (never copied here).
  local stages
  stages="$(kwok_stages)" || die "kwok's stage files are not in the Go module cache: re-run tools/e2e/bootstrap.sh (without --prune)"
  spawn kwok "$BIN/kwok" \
    --kubeconfig "$KUBECONFIG_PATH" \
    --config "$stages${NCP_E2E_KWOK_CONFIG:+,$NCP_E2E_KWOK_CONFIG}" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector "$KWOK_NODE_ANNOTATION" \
    --manage-nodes-with-label-selector= --manage-single-node= \
    --cidr 10.0.1.0/24 --node-lease-duration-seconds 40 \
    --node-ip 127.0.0.1 --node-port "$KWOK_PORT" \
    --server-address "127.0.0.1:$KWOK_PORT"
  wait_for "kwok /healthz" kwok kwok_healthy

  log "ready in $((SECONDS - t0))s: https://127.0.0.1:$API_PORT (kubeconfig $KUBECONFIG_PATH, logs $LOGS)"
}

cmd_stop() {
  local stopped=0 name pid
  for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if alive "$name"; then
      pid="$(cat "$RUN/$name.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
      stopped=$((stopped + 1))
    fi
    rm -f "$RUN/$name.pid"
  done
  log "stopped $stopped process(es)"
}

cmd_env() {
  [[ -f "$KUBECONFIG_PATH" ]] || die "no kubeconfig in $STATE: run '$0 start' first"
  echo "export KUBECONFIG=$KUBECONFIG_PATH"
  echo "export NCP_E2E_STATE=$STATE"
  echo "export NCP_E2E_APISERVER=https://127.0.0.1:$API_PORT"
  # The control plane's own settings (stand-in charts, no waits), merged over whichever stack is deployed here.
  echo "export NCP_LOCAL_OVERLAY=$HERE/local-control-plane.yaml"
  # Engine exports (PATH with pulumi + plugins, PULUMI_HOME, offline switches), if built.
  "$HERE/bootstrap.sh" --print-env 2>/dev/null || true
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  status)
    if alive kube-apiserver && readyz; then echo running; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
