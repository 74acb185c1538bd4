#!/usr/bin/env bash
# Builds, from the Go module proxy only, a real Kubernetes control plane (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler), kwok, the Pulumi CLI
# with its Python language host, and the three Pulumi resource providers the kit
# uses, into a cache OUTSIDE the repository:
#
#   ${CD4ML_ENVTEST_CACHE:-~/.cache/cd4ml/envtest}/bin     binaries + VERSIONS
#                                                  /src     generated consumer modules
#                                                  /stages  kwok stage configs
#
# Idempotent: a binary whose stamp (bin/.stamps/<name>) matches its pinned
# version and recipe is skipped, so a warm run takes seconds and needs no network.
# Usage: tests/envtest/build.sh [step ...]   steps: k8s etcd kwok pulumi providers
#        (default: all).  FORCE=1 rebuilds everything.
# Nothing from upstream is copied into this repository: every generated go.mod,
# main.go and copied upstream source tree lives in the cache.
set -euo pipefail

# ---------------------------------------------------------------------------
# Pinned versions.  *_WANT is what we ask for first; *_FALLBACK are tried in
# order when the (filtered) proxy answers 403 "not available" for the wanted one.
# ---------------------------------------------------------------------------
K8S_WANT=v1.36.1            K8S_FALLBACK="v1.36.3"
ETCD_WANT=v3.6.17           ETCD_FALLBACK="v3.6.16 v3.6.15"
KWOK_WANT=v0.8.0            KWOK_FALLBACK=""
# requirements.txt pins the Python SDK pulumi==3.272.0; pkg/v3 v3.272.0 and
# v3.273.0 answer 403, v3.274.0 is the nearest served (a newer CLI drives an older SDK).
PULUMI_WANT=v3.272.0        PULUMI_FALLBACK="v3.274.0 v3.274.1 v3.275.0 v3.276.0"
# Provider versions pinned by requirements.txt (pulumi_kubernetes, pulumi_random,
# pulumi_command); the proxy is asked for the tag's commit when the tag isn't served.
PULUMI_K8S_WANT=v4.34.2
PULUMI_RANDOM_WANT=v4.21.4
PULUMI_COMMAND_WANT=v1.2.1

# Bumped when a build recipe (flags, patches) changes, to invalidate stamps.
RECIPE=1

CACHE=${CD4ML_ENVTEST_CACHE:-$HOME/.cache/cd4ml/envtest}
BIN=$CACHE/bin
SRC=$CACHE/src
STAGES=$CACHE/stages
STAMPS=$BIN/.stamps
LOGS=$CACHE/logs
MIRRORS=${CD4ML_MIRRORS:-/work/.mirror}   # bare git mirrors, read only (git show)

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
export GOFLAGS=-buildvcs=false   # no VCS stamping: sources come from the module cache
export GOTOOLCHAIN=local         # never try to download another toolchain
export CGO_ENABLED=0             # static binaries, as upstream release builds are
export GOPROXY=${GOPROXY:-https://proxy.golang.org}
NICE=(nice -n 10)

log() { printf '[envtest %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[envtest %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

mkdir -p "$BIN" "$SRC" "$STAGES" "$STAMPS" "$LOGS"
[[ -x $GO ]] || die "go not found (looked for $GO)"

# stamp key: what was asked for + recipe.  A warm run compares only this.
key() { echo "$1 recipe=$RECIPE"; }
fresh() { # fresh NAME KEY -> 0 when bin/NAME exists and was built for KEY
	[[ -z ${FORCE:-} && -x $BIN/$1 && -f $STAMPS/$1 && "$(head -1 "$STAMPS/$1")" == "$2" ]]
}
stamp() { # stamp NAME KEY RESOLVED-VERSION SOURCE
	printf '%s\n%s %s\n' "$2" "$3" "$4" >"$STAMPS/$1"
}

# resolve MODULE WANT FALLBACK... -> prints the first version the proxy serves.
resolve() {
	local mod=$1 v out
	shift
	for v in "$@"; do
		[[ -n $v ]] || continue
		if out=$("$GO" mod download -json "$mod@$v" 2>&1) && ! grep -q '"Error"' <<<"$out"; then
			sed -n 's/^\t"Version": "\(.*\)",$/\1/p' <<<"$out" | head -1
			return 0
		fi
		log "  $mod@$v not served: $(grep -o 'server response: [^"]*' <<<"$out" | head -1 | sed 's/\\n.*//')" >&2
	done
	return 1
}
moddir() { "$GO" mod download -json "$1@$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }
modtime() { "$GO" mod download -json "$1@$2" | sed -n 's/^\t"Time": "\(.*\)",$/\1/p'; }

# run_logged LOGNAME CMD... : run a long command with its output in logs/, show the tail on failure
run_logged() {
	local name=$1
	shift
	if ! "$@" >"$LOGS/$name.log" 2>&1; then
		tail -40 "$LOGS/$name.log" >&2
		die "$name failed (full log: $LOGS/$name.log)"
	fi
}

# ---------------------------------------------------------------------------
# 1. Kubernetes control plane.
# k8s.io/kubernetes's go.mod (v1.36.1) replaces every k8s.io/<staging> module with
# ./staging/src/k8s.io/<name>, which is not in the module zip, so `go install`
# refuses it.  As kubernetes/autoscaler's cluster-autoscaler/go.mod does, a consumer
# module requires k8s.io/kubernetes vX and replaces each staging module with its
# published k8s.io/<name> v0.<minor>.<patch>.  The staging list is read from the
# downloaded k8s.io/kubernetes go.mod (33 modules at v1.36.1, all served at v0.36.1).
# Version ldflags: hack/lib/version.sh (kube::version::ldflags) sets gitVersion,
# gitMajor, gitMinor, gitTreeState, gitCommit, buildDate in
# k8s.io/component-base/version and k8s.io/client-go/pkg/version.
# ---------------------------------------------------------------------------
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler)
step_k8s() {
	local k=$(key "$K8S_WANT") b todo=()
	for b in "${K8S_BINS[@]}"; do fresh "$b" "$k" || todo+=("$b"); done
	if [[ ${#todo[@]} -eq 0 ]]; then log "k8s: ${K8S_BINS[*]} $K8S_WANT present, skipping"; return; fi
	log "k8s: resolving k8s.io/kubernetes $K8S_WANT"
	local v
	v=$(resolve k8s.io/kubernetes "$K8S_WANT" $K8S_FALLBACK) || die "k8s: no k8s.io/kubernetes version served among $K8S_WANT $K8S_FALLBACK"
	[[ $v == "$K8S_WANT" ]] || log "k8s: WARNING $K8S_WANT not served, using $v"
	local kdir staging_v mod major minor dir=$SRC/kubernetes-$v
	kdir=$(moddir k8s.io/kubernetes "$v")
	staging_v=v0.${v#v1.}
	major=${v#v}; major=${major%%.*}
	minor=${v#v*.}; minor=${minor%%.*}
	mkdir -p "$dir"
	{
		echo "// Generated by tests/envtest/build.sh: consumer module for k8s.io/kubernetes $v"
		echo "module cd4ml.local/envtest/kubernetes"
		echo
		sed -n 's/^go \(.*\)/go \1/p; s/^godebug \(.*\)/godebug \1/p' "$kdir/go.mod"
		echo
		echo "require k8s.io/kubernetes $v"
		echo
		echo "replace ("
		sed -n '/^replace (/,/^)/p' "$kdir/go.mod" | awk -v sv="$staging_v" '/=> \.\/staging\//{printf "\t%s => %s %s\n", $1, $1, sv}'
		echo ")"
		echo
		echo "tool ("
		for b in "${K8S_BINS[@]}"; do echo "	k8s.io/kubernetes/cmd/$b"; done
		echo ")"
	} >"$dir/go.mod"
	log "k8s: go mod tidy in $dir (staging modules -> $staging_v)"
	(cd "$dir" && run_logged k8s-tidy "$GO" mod tidy)
	local date vpkg ld="-s -w"
	date=$(modtime k8s.io/kubernetes "$v")
	for vpkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $vpkg.gitVersion=$v -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$minor"
		ld+=" -X $vpkg.gitTreeState=clean -X $vpkg.gitCommit= -X $vpkg.buildDate=$date"
	done
	local pkgs=()
	for b in "${todo[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
	log "k8s: building ${todo[*]} (cold: ~30-40 min on 2 cores; log: $LOGS/k8s-build.log)"
	(cd "$dir" && run_logged k8s-build "${NICE[@]}" "$GO" build -trimpath -ldflags "$ld" -o "$BIN/" "${pkgs[@]}")
	for b in "${todo[@]}"; do stamp "$b" "$k" "$v" "k8s.io/kubernetes@$v"; done
	log "k8s: built ${todo[*]} $v"
}

# ---------------------------------------------------------------------------
main() {
	local steps=("$@")
	[[ ${#steps[@]} -gt 0 ]] || steps=(k8s etcd kwok pulumi providers)
	local s
	for s in "${steps[@]}"; do
		declare -F "step_$s" >/dev/null || die "unknown step '$s'"
		"step_$s"
	done
}
main "$@"
