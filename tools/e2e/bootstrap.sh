#!/usr/bin/env bash
# Builds the offline Pulumi engine and a local Kubernetes control plane from Go modules
# (the Go module proxy is the only network source used), into a versioned cache outside
# the repository:
#
#   ${NCP_ENGINE_CACHE:-$HOME/.cache/ncp-inference/engine}/
#     gomod/ gocache/            shared GOMODCACHE / GOCACHE (reused across versions)
#     resolved/                  resolved Pulumi version for a wanted version (offline re-runs)
#     <version-key>/
#       bin/                     pulumi, pulumi-language-python(+ -exec), pulumi-resource-kubernetes,
#                                kube-apiserver, kube-controller-manager, etcd
#       pulumi-home/             PULUMI_HOME with the kubernetes plugin installed
#       src/<component>/         generated wrapper modules (go.mod, main.go)
#       stamps/ logs/ timings.tsv
#
# Usage:
#   tools/e2e/bootstrap.sh               build what is missing (a no-op taking seconds when cached)
#   tools/e2e/bootstrap.sh --only a,b    build only these components (pulumi, langhost, kubernetes,
#                                  kube, scheduler, etcd, promtool, prometheus, kwok, kube-score, trivy, epp, random)
#   tools/e2e/bootstrap.sh --with-random also try the pulumi-random provider (expected to fail, see README)
#   tools/e2e/bootstrap.sh --prune       after a complete build, delete the shared Go caches (~10+ GB;
#                                  binaries stay, re-runs stay instant; a version bump re-downloads)
#   tools/e2e/bootstrap.sh --print-bin   print the bin dir (fails if not bootstrapped; no network)
#   tools/e2e/bootstrap.sh --print-env   print shell exports to run the engine offline (no network)
set -Eeuo pipefail
# No failure is silent: whatever a step did not catch itself names the line and command (a first run once died with
# no message reading a file that only a previous build writes).
trap 'echo "bootstrap: ERROR: unexpected failure (exit $?) at tools/e2e/bootstrap.sh line $LINENO: $BASH_COMMAND" >&2' ERR

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${NCP_ENGINE_CACHE:-$HOME/.cache/ncp-inference/engine}"

# ---- pinned versions --------------------------------------------------------------------
PULUMI_WANT="${NCP_PULUMI_VERSION:-3.272.0}"   # Python SDK pin; nearest served >= is used
K8S_PROVIDER_VERSION=4.25.0                     # pulumi-kubernetes Python SDK pin
K8S_PROVIDER_MODULE=github.com/pulumi/pulumi-kubernetes/provider/v4
K8S_PROVIDER_MODULE_VERSION=v4.0.0-20260115033456-f47bc2d6f199   # = tag v4.25.0
K8S_GO_SDK_VERSION=v4.25.0                      # replaces the provider's local ../sdk
KUBE_VERSION=1.35.4                             # k8s.io/kubernetes (apiserver, controller-manager)
ETCD_VERSION=3.6.16                             # go.etcd.io/etcd/server/v3
RANDOM_VERSION=4.21.4                           # pulumi-random Python SDK pin (provider: see README)
# Judges of what the program emits (../shared/reference/behavior-judges.md); each only rebuilds when its own pin moves.
PROMTOOL_VERSION=v0.316.0                       # github.com/prometheus/prometheus (= Prometheus 3.x): rules; the
                                                # server (component prometheus) is built from the same module version
KWOK_VERSION=v0.8.0                             # sigs.k8s.io/kwok: simulated nodes and pods
KUBE_SCORE_VERSION=v1.20.0                      # github.com/zegl/kube-score: workload hardening checks
TRIVY_VERSION=v0.74.0                           # github.com/aquasecurity/trivy: `trivy config` (KSV-*) checks
# The endpoint picker's runner at the version Dynamo 1.5's picker builds on (data/integration-points.yaml
# endpointPicker.moduleVersion; tests/test_endpoint_picker.py keeps the two equal).
EPP_VERSION=v0.0.0-20260603065144-7c1f1994dbff  # sigs.k8s.io/gateway-api-inference-extension cmd/epp
# If the proxy ever serves the upstream Python language host, set this to its pseudo-version
# (the commit of the Pulumi tag) to build it instead of our replacement in engine/.
LANGHOST_UPSTREAM_VERSION="${NCP_LANGHOST_UPSTREAM_VERSION:-}"

ALL_COMPONENTS=(pulumi langhost kubernetes kube scheduler etcd promtool prometheus kwok kube-score trivy epp)

export GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gocache"
export GOFLAGS="-modcacherw -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-local}" CGO_ENABLED=0

die() { echo "bootstrap: ERROR: $*" >&2; exit 1; }
log() { echo "bootstrap: $*" >&2; }

# ---- Pulumi version resolution ----------------------------------------------------------
resolved_file="$CACHE/resolved/pulumi-$PULUMI_WANT"

resolve_pulumi() {
  if [[ -s "$resolved_file" ]]; then cat "$resolved_file"; return; fi
  mkdir -p "$CACHE/resolved"
  local candidates v logfile="$CACHE/resolved/resolve.log"
  : >"$logfile"
  candidates="$( { echo "v$PULUMI_WANT"
    go list -m -versions github.com/pulumi/pulumi/pkg/v3 2>>"$logfile" | tr ' ' '\n' | grep '^v3\.' || true
  } | awk -v want="$PULUMI_WANT" '
      { s=$0; sub(/^v/,"",s); if (s ~ /-/) next; split(s,a,"."); split(want,w,".");
        if (a[1]*1e6+a[2]*1e3+a[3] >= w[1]*1e6+w[2]*1e3+w[3]) print $0 }' | sort -uV)"
  for v in $candidates; do
    if go mod download "github.com/pulumi/pulumi/pkg/v3@$v" "github.com/pulumi/pulumi/sdk/v3@$v" 2>>"$logfile"; then
      [[ "$v" == "v$PULUMI_WANT" ]] || log "pulumi v$PULUMI_WANT is not served by the module proxy; using $v"
      echo "$v" >"$resolved_file"
      echo "$v"
      return
    fi
  done
  die "pulumi: resolving the version failed: no served github.com/pulumi/pulumi/pkg/v3 version >= $PULUMI_WANT" \
    "($(awk 'NF {line = $0} END {print line}' "$logfile"); full log: $logfile)"
}

key_for() { echo "pulumi-${1#v}_k8s-${K8S_PROVIDER_VERSION}_kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}"; }

print_env() {
  local bin="$1" home="$2"
  cat <<EOF
export PATH="$bin:\$PATH"
export PULUMI_HOME="$home"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_DISABLE_REGISTRY_RESOLVE=true
export PULUMI_IGNORE_AMBIENT_PLUGINS=true
export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true
EOF
}

case "${1:-}" in
  --print-bin|--print-env)
    [[ -s "$resolved_file" ]] || die "not bootstrapped (no $resolved_file): run tools/e2e/bootstrap.sh"
    KEYDIR="$CACHE/$(key_for "$(cat "$resolved_file")")"
    [[ -f "$KEYDIR/stamps/complete" ]] || die "not bootstrapped ($KEYDIR incomplete): run tools/e2e/bootstrap.sh"
    if [[ "$1" == --print-bin ]]; then echo "$KEYDIR/bin"; else print_env "$KEYDIR/bin" "$KEYDIR/pulumi-home"; fi
    exit 0 ;;
esac

COMPONENTS=("${ALL_COMPONENTS[@]}")
WITH_RANDOM=0
PRUNE=0
while (($#)); do
  case "$1" in
    --only) IFS=, read -r -a COMPONENTS <<<"$2"; shift 2 ;;
    --with-random) WITH_RANDOM=1; shift ;;
    --prune) PRUNE=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done
((WITH_RANDOM)) && COMPONENTS+=(random)

command -v go >/dev/null || die "go is not installed"
command -v python3 >/dev/null || die "python3 is needed (to stamp the provider schema version)"

T_START=$SECONDS
PULUMI_VERSION="$(resolve_pulumi)" || exit 1  # resolve_pulumi said why
KEY="$(key_for "$PULUMI_VERSION")"
KEYDIR="$CACHE/$KEY"
BIN="$KEYDIR/bin"
export PULUMI_HOME="$KEYDIR/pulumi-home"
mkdir -p "$BIN" "$KEYDIR/src" "$KEYDIR/stamps" "$KEYDIR/logs" "$PULUMI_HOME"
log "cache $KEYDIR"

moddir() { go mod download -json "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir","")); sys.exit(1 if d.get("Error") else 0)'; }

# build_component NAME "OUTPUTS": unless up to date, writes the wrapper module src/NAME
# (prepare_NAME), then `go mod tidy` + build_NAME. "Up to date" = all outputs exist and the
# stamp matches a hash of the recipe (pinned versions, the prepare/build functions, our
# sources in tools/e2e/engine/), so a re-run needs neither the network nor the Go caches.
recipe_hash() {
  {
    echo "$PULUMI_VERSION $K8S_PROVIDER_VERSION $K8S_PROVIDER_MODULE_VERSION $K8S_GO_SDK_VERSION"
    echo "$KUBE_VERSION $ETCD_VERSION $RANDOM_VERSION $LANGHOST_UPSTREAM_VERSION $GOFLAGS $CGO_ENABLED"
    declare -f "prepare_$1" "build_$1"
    case "$1" in
      kube|scheduler) declare -f kube_module ;;
      promtool|prometheus) echo "$PROMTOOL_VERSION" ;;
      kwok) echo "$KWOK_VERSION" ;;
      kube-score) echo "$KUBE_SCORE_VERSION" ;;
      trivy) echo "$TRIVY_VERSION" ;;
      epp) echo "$EPP_VERSION" ;;
    esac
    case "$1" in
      langhost) [[ -n "$LANGHOST_UPSTREAM_VERSION" ]] || cat "$HERE/engine/pulumi-language-python/main.go" ;;
      kubernetes) cat "$HERE/engine/pulumi-resource-kubernetes/main.go" ;;
    esac
  } | sha256sum | cut -c1-16
}

# step COMPONENT STEP LOG CMD...: run CMD with errexit in force, its output appended to LOG; on failure name the
# component, the step, the reason (the log's last lines) and the log, then stop. CMD runs as a background job that is
# waited for: in `if CMD` or `CMD || ...` bash would switch errexit off inside CMD's functions, and a plain failing
# subshell would fire the ERR trap meant for unexpected failures.
step() {
  local name="$1" what="$2" logfile="$3" rc=0; shift 3
  ( trap - ERR; set -e; "$@" ) >>"$logfile" 2>&1 &
  wait "$!" || rc=$?
  ((rc == 0)) && return 0
  tail -n 25 "$logfile" | sed 's/^/  | /' >&2
  die "$name: $what failed (exit $rc): $(awk 'NF {line = $0} END {print line}' "$logfile") (full log: $logfile)"
}

build_component() {
  local name="$1" outputs="$2" src="$KEYDIR/src/$1" stamp="$KEYDIR/stamps/$1" hash t0 o missing=0 last="" logfile
  logfile="$KEYDIR/logs/$name.log"
  hash="$(recipe_hash "$name")"
  for o in $outputs; do [[ -e "$BIN/$o" ]] || missing=1; done
  if ((missing == 0)) && [[ -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
    log "$name: up to date"; return 0
  fi
  # Say how long it usually takes: this machine's last build of the component, else the cold figure of tools/e2e/README.md.
  # (timings.tsv exists only after a first build.)
  [[ -f "$KEYDIR/timings.tsv" ]] && last="$(awk -v n="$name" '$1 == n {t = $2} END {print t}' "$KEYDIR/timings.tsv")"
  log "$name: building (last build here: ${last:-none yet; a cold build of everything takes ~28 min on 2 cores, tools/e2e/README.md}; log: $logfile)"
  t0=$SECONDS
  : >"$logfile"
  rm -rf "$src" && mkdir -p "$src"
  step "$name" "prepare (wrapper module $src)" "$logfile" "prepare_$name" "$src"
  step "$name" "go mod tidy (in $src)" "$logfile" in_dir "$src" go mod tidy
  step "$name" build "$logfile" in_dir "$src" "build_$name"
  for o in $outputs; do
    [[ -x "$BIN/$o" ]] || die "$name: build produced no $BIN/$o (the build step exited 0; full log: $logfile)"
  done
  echo "$hash" >"$stamp"
  printf '%s\t%ss\t%s\n' "$name" "$((SECONDS - t0))" "$(date -u +%FT%TZ)" >>"$KEYDIR/timings.tsv"
  log "$name: built in $((SECONDS - t0))s"
}
in_dir() { cd "$1" && shift && "$@"; }

# ---- pulumi CLI -------------------------------------------------------------------------
prepare_pulumi() {
  local gomod
  gomod="$(go mod download -json "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  {
    printf 'module ncp.local/engine/pulumi-cli\n\ngo 1.25\n\nrequire (\n'
    printf '\tgithub.com/pulumi/pulumi/pkg/v3 %s\n\tgithub.com/pulumi/pulumi/sdk/v3 %s\n)\n\n' "$PULUMI_VERSION" "$PULUMI_VERSION"
    # Copy pkg's non-local replace directives (the local ../sdk one is what breaks `go install`).
    awk '/^replace[ \t]*\(/ {blk=1; next} blk && /^\)/ {blk=0; next}
         blk {print "replace " $0; next} /^replace[ \t]/ {print}' "$gomod" |
      awk -F'=>' '{t=$2; gsub(/^[ \t]+/, "", t); if (t !~ /^(\.|\/)/) print}' | sed 's/^replace[ \t]*/replace /'
    printf '\ntool github.com/pulumi/pulumi/pkg/v3/cmd/pulumi\n'
  } >"$1/go.mod"
}
build_pulumi() {
  go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    -o "$BIN/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
}

# ---- Python language host ---------------------------------------------------------------
prepare_langhost() {
  if [[ -n "$LANGHOST_UPSTREAM_VERSION" ]]; then
    printf 'module ncp.local/engine/pulumi-language-python\n\ngo 1.25\n\nrequire (\n\tgithub.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 %s\n\tgithub.com/pulumi/pulumi/pkg/v3 %s\n\tgithub.com/pulumi/pulumi/sdk/v3 %s\n)\n\ntool github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3\n' \
      "$LANGHOST_UPSTREAM_VERSION" "$PULUMI_VERSION" "$PULUMI_VERSION" >"$1/go.mod"
  else
    printf 'module ncp.local/engine/pulumi-language-python\n\ngo 1.25\n\nrequire github.com/pulumi/pulumi/sdk/v3 %s\n' \
      "$PULUMI_VERSION" >"$1/go.mod"
    cp "$HERE/engine/pulumi-language-python/main.go" "$1/main.go"
  fi
}
build_langhost() {
  local pkg=. sdkdir
  [[ -n "$LANGHOST_UPSTREAM_VERSION" ]] && pkg=github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3
  go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    -o "$BIN/pulumi-language-python" "$pkg" || return 1
  # The host runs programs through this script, which must sit next to it.
  sdkdir="$(moddir "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION")" || return 1
  install -m 0755 "$sdkdir/python/cmd/pulumi-language-python-exec" "$BIN/pulumi-language-python-exec"
}

# ---- Kubernetes provider ----------------------------------------------------------------
prepare_kubernetes() {
  local d
  d="$(moddir "$K8S_PROVIDER_MODULE@$K8S_PROVIDER_MODULE_VERSION")/cmd/pulumi-resource-kubernetes"
  printf 'module ncp.local/engine/pulumi-resource-kubernetes\n\ngo 1.24.7\n\nrequire (\n\t%s %s\n\tgithub.com/pulumi/pulumi-kubernetes/sdk/v4 %s\n)\n' \
    "$K8S_PROVIDER_MODULE" "$K8S_PROVIDER_MODULE_VERSION" "$K8S_GO_SDK_VERSION" >"$1/go.mod"
  cp "$HERE/engine/pulumi-resource-kubernetes/main.go" "$1/main.go"
  # What upstream's `go generate` does: stamp the version into the schema, compact the mapping.
  python3 - "$d" "$K8S_PROVIDER_VERSION" "$1" <<'EOF'
import json, os, sys
src, version, out = sys.argv[1:]
schema = json.load(open(os.path.join(src, "schema.json")))
schema["version"] = version
json.dump(schema, open(os.path.join(out, "schema-embed.json"), "w"), separators=(",", ":"))
mapping = json.load(open(os.path.join(src, "terraform-mapping.json")))
json.dump(mapping, open(os.path.join(out, "terraform-mapping-embed.json"), "w"), separators=(",", ":"))
EOF
}
build_kubernetes() {
  go build -trimpath -ldflags "-s -w -X $K8S_PROVIDER_MODULE/pkg/version.Version=$K8S_PROVIDER_VERSION" \
    -o "$BIN/pulumi-resource-kubernetes" .
}

install_kubernetes_plugin() {
  local dir="$PULUMI_HOME/plugins/resource-kubernetes-v$K8S_PROVIDER_VERSION"
  if [[ -x "$dir/pulumi-resource-kubernetes" && "$dir/pulumi-resource-kubernetes" -ef "$BIN/pulumi-resource-kubernetes" ]]; then
    return 0
  fi
  "$BIN/pulumi" plugin rm resource kubernetes "$K8S_PROVIDER_VERSION" --yes >/dev/null 2>&1 || true
  : >"$KEYDIR/logs/plugin-install.log"
  step kubernetes "plugin install (pulumi plugin install resource kubernetes into $PULUMI_HOME)" \
    "$KEYDIR/logs/plugin-install.log" \
    "$BIN/pulumi" plugin install resource kubernetes "$K8S_PROVIDER_VERSION" --file "$BIN/pulumi-resource-kubernetes"
  [[ -x "$dir/pulumi-resource-kubernetes" ]] ||
    die "kubernetes: plugin install exited 0 but did not create $dir (log: $KEYDIR/logs/plugin-install.log)"
  ln -f "$BIN/pulumi-resource-kubernetes" "$dir/pulumi-resource-kubernetes" # same inode: no 2nd copy
}

# ---- kube-apiserver + kube-controller-manager ------------------------------------------
# kube_module DIR TOOL...: a module requiring k8s.io/kubernetes with every staging module replaced by its release.
kube_module() {
  local dir="$1" gomod minor staging t; shift
  gomod="$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  minor="$(cut -d. -f2 <<<"$KUBE_VERSION")"
  staging="v0.$minor.$(cut -d. -f3 <<<"$KUBE_VERSION")"
  {
    printf 'module ncp.local/engine/kubernetes-control-plane\n\n'
    grep -E '^(go|godebug) ' "$gomod"
    printf '\nrequire k8s.io/kubernetes v%s\n\n' "$KUBE_VERSION"
    # Every staging module (replaced by ./staging/... upstream) -> its published release.
    printf 'replace (\n'
    awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod" | sort -u |
      while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging"; done
    printf ')\n\ntool (\n'
    for t in "$@"; do printf '\tk8s.io/kubernetes/cmd/%s\n' "$t"; done
    printf ')\n'
  } >"$dir/go.mod"
  grep -q '=> k8s.io/api ' "$dir/go.mod" || die "kube: found no staging replaces in $gomod"
}
kube_ldflags() {
  local v=k8s.io/component-base/version minor
  minor="$(cut -d. -f2 <<<"$KUBE_VERSION")"
  echo "-s -w -X $v.gitVersion=v$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
}
prepare_kube() { kube_module "$1" kube-apiserver kube-controller-manager; }
build_kube() {
  go build -trimpath -ldflags "$(kube_ldflags)" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver || return 1
  go build -trimpath -ldflags "$(kube_ldflags)" -o "$BIN/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager
}

# ---- kube-scheduler: the real scheduler, for pods on simulated (KWOK) nodes ------------------
prepare_scheduler() { kube_module "$1" kube-scheduler; }
build_scheduler() {
  go build -trimpath -ldflags "$(kube_ldflags)" -o "$BIN/kube-scheduler" k8s.io/kubernetes/cmd/kube-scheduler
}

# ---- promtool: parses and unit-tests the PrometheusRules the program renders -----------------
prepare_promtool() { printf 'module ncp.local/engine/promtool\n\ngo 1.25\n' >"$1/go.mod"; }
build_promtool() { GOBIN="$BIN" go install "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"; }

# ---- prometheus: the server, at promtool's module version (ncp/twin/prometheus.py scrapes the serving twin with it) ------
# Without the `builtinassets` build tag the web UI is not embedded (web/ui/ui.go serves it from ./web/ui when present):
# no npm step, and the HTTP API the tests and the planner query is the same. Built after promtool, it reuses most of
# promtool's compiled packages from GOCACHE.
prepare_prometheus() { printf 'module ncp.local/engine/prometheus\n\ngo 1.25\n' >"$1/go.mod"; }
build_prometheus() { GOBIN="$BIN" go install "github.com/prometheus/prometheus/cmd/prometheus@$PROMTOOL_VERSION"; }

# ---- kwok: simulated nodes (GPU capacity, labels, taints) and pod lifecycle -------------------
prepare_kwok() { printf 'module ncp.local/engine/kwok\n\ngo 1.25\n' >"$1/go.mod"; }
build_kwok() { GOBIN="$BIN" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"; }

# ---- kube-score and trivy: scanners of the rendered manifests (tests/test_scanners.py) ------
prepare_kube-score() { printf 'module ncp.local/engine/kube-score\n\ngo 1.25\n' >"$1/go.mod"; }
build_kube-score() { GOBIN="$BIN" go install "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"; }
prepare_trivy() { printf 'module ncp.local/engine/trivy\n\ngo 1.25\n' >"$1/go.mod"; }
# trivy v0.74 imports encoding/json/v2, which Go only builds behind this experiment.
build_trivy() { GOEXPERIMENT=jsonv2 GOBIN="$BIN" go install "github.com/aquasecurity/trivy/cmd/trivy@$TRIVY_VERSION"; }

# ---- epp: the endpoint picker runner; parses the program's picker args and loads its config ----------
prepare_epp() { printf 'module ncp.local/engine/epp\n\ngo 1.25\n' >"$1/go.mod"; }
build_epp() { GOBIN="$BIN" go install "sigs.k8s.io/gateway-api-inference-extension/cmd/epp@$EPP_VERSION"; }

# ---- etcd -------------------------------------------------------------------------------
prepare_etcd() {
  {
    printf 'module ncp.local/engine/etcd\n\ngo 1.25\n\nrequire (\n'
    # server/v3 replaces its sibling modules with ../; require the same release instead.
    for m in api/v3 client/pkg/v3 client/v3 pkg/v3 server/v3; do
      printf '\tgo.etcd.io/etcd/%s v%s\n' "$m" "$ETCD_VERSION"
    done
    printf ')\n\ntool go.etcd.io/etcd/server/v3\n'
  } >"$1/go.mod"
}
build_etcd() {
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
}

# ---- pulumi-random (opt-in; see README: its provider module is not served) ----------------
prepare_random() {
  printf 'module ncp.local/engine/pulumi-resource-random\n\ngo 1.25\n\nrequire github.com/pulumi/pulumi-random/provider/v4 v%s\n\ntool github.com/pulumi/pulumi-random/provider/v4/cmd/pulumi-resource-random\n' \
    "$RANDOM_VERSION" >"$1/go.mod"
}
build_random() {
  go build -trimpath -o "$BIN/pulumi-resource-random" github.com/pulumi/pulumi-random/provider/v4/cmd/pulumi-resource-random
}

outputs_for() {
  case "$1" in
    pulumi) echo pulumi ;;
    langhost) echo "pulumi-language-python pulumi-language-python-exec" ;;
    kubernetes) echo pulumi-resource-kubernetes ;;
    kube) echo "kube-apiserver kube-controller-manager" ;;
    scheduler) echo kube-scheduler ;;
    etcd) echo etcd ;;
    promtool) echo promtool ;;
    prometheus) echo prometheus ;;
    kwok) echo kwok ;;
    kube-score) echo kube-score ;;
    trivy) echo trivy ;;
    epp) echo epp ;;
    random) echo pulumi-resource-random ;;
    *) die "unknown component: $1" ;;
  esac
}

for c in "${COMPONENTS[@]}"; do
  build_component "$c" "$(outputs_for "$c")"
done
if [[ -x "$BIN/pulumi" && -x "$BIN/pulumi-resource-kubernetes" ]]; then
  install_kubernetes_plugin
fi

# Complete when every default component is present.
complete=1
for c in "${ALL_COMPONENTS[@]}"; do
  for o in $(outputs_for "$c"); do [[ -x "$BIN/$o" ]] || complete=0; done
done
((complete)) && touch "$KEYDIR/stamps/complete"
if ((complete && PRUNE)); then
  log "pruning Go caches $GOMODCACHE $GOCACHE"
  rm -rf "$GOMODCACHE" "$GOCACHE"
fi

# ---- summary ----------------------------------------------------------------------------
# awk reads the whole output: `head -n 1` would close the pipe early, and a multi-line writer (etcd) then dies of
# SIGPIPE, which pipefail turns into a failed bootstrap (exit 141).
ver() { { "$@" 2>&1 || true; } | awk 'NR == 1 { gsub(/[ \t]+/, " "); print }'; }
{
  echo "== ncp-inference offline engine: $KEYDIR"
  printf '%-30s %-28s %8s\n' binary version size
  for b in pulumi pulumi-language-python pulumi-language-python-exec pulumi-resource-kubernetes \
    kube-apiserver kube-controller-manager kube-scheduler etcd promtool prometheus kwok kube-score trivy epp pulumi-resource-random; do
    [[ -e "$BIN/$b" ]] || { [[ $b == pulumi-resource-random ]] && printf '%-30s %s\n' "$b" "not built (see README)"; continue; }
    case "$b" in
      pulumi) v="$(ver "$BIN/pulumi" version)" ;;
      pulumi-language-python) v="$(ver "$BIN/$b" -version)" ;;
      pulumi-language-python-exec) v="(script from sdk $PULUMI_VERSION)" ;;
      pulumi-resource-kubernetes) v="$K8S_PROVIDER_VERSION ($(PULUMI_HOME="$PULUMI_HOME" "$BIN/pulumi" plugin ls 2>/dev/null | awk '$1=="kubernetes"{print "installed " $3}'))" ;;
      kube-apiserver|kube-controller-manager|kube-scheduler|promtool|prometheus|kwok) v="$(ver "$BIN/$b" --version)" ;;
      etcd) v="$(ver "$BIN/etcd" --version)" ;;
      kube-score) v="$KUBE_SCORE_VERSION (go install: no version stamp)" ;;
      trivy) v="$TRIVY_VERSION (go install: no version stamp)" ;;
      epp) v="$EPP_VERSION (go install: no version stamp)" ;;
      *) v="?" ;;
    esac
    printf '%-30s %-28s %8s\n' "$b" "$v" "$(du -h "$BIN/$b" | cut -f1)"
  done
  [[ -f "$KEYDIR/timings.tsv" ]] && { echo "-- build history (component, seconds, finished; from $KEYDIR/timings.tsv):"; cat "$KEYDIR/timings.tsv"; }
  echo "-- cache size: $(du -sh "$CACHE" 2>/dev/null | cut -f1) ($CACHE); this run: $((SECONDS - T_START))s"
  echo "-- offline engine environment (also: tools/e2e/bootstrap.sh --print-env):"
  print_env "$BIN" "$PULUMI_HOME"
} >&2
((complete)) || die "some components are missing (built only: ${COMPONENTS[*]})"
