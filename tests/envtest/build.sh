#!/usr/bin/env bash
# Builds from source a real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler), kwok, the Pulumi CLI with its Python
# language host, and the three Pulumi resource providers the kit uses, into a
# cache OUTSIDE the repository.  All Go modules come from the Go module proxy;
# where the proxy refuses a version (it is filtered here), the source of that
# version is exported from the search tool's bare git mirrors (/work/.mirror,
# `fetch github:<org>/<repo>`) instead -- see step 5.  Layout:
#
#   ${CD4ML_ENVTEST_CACHE:-~/.cache/cd4ml/envtest}/bin     binaries + VERSIONS
#                                                  /src     generated consumer modules, exported sources
#                                                  /stages  kwok stage configs
#                                                  /logs    one log per build command
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
# pulumi_command).  Source: the proxy at that version if served, else the git mirror
# at that tag or the newest tag below it (step 5).  The binaries report these versions.
PULUMI_K8S_WANT=v4.34.2
PULUMI_RANDOM_WANT=v4.21.4
PULUMI_COMMAND_WANT=v1.2.1

# Bumped when a build recipe (flags, patches) changes, to invalidate stamps.
RECIPE=2

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
# modtime MODULE VERSION -> the version's commit time from the proxy's .info file (a reproducible build date)
modtime() {
	local info
	info=$("$GO" mod download -json "$1@$2" | sed -n 's/^\t"Info": "\(.*\)",$/\1/p')
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["Time"])' "$info"
}

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
	[[ $date =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$ ]] || die "k8s: no commit time for k8s.io/kubernetes@$v (got '$date')"
	for vpkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $vpkg.gitVersion=$v -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$minor"
		ld+=" -X $vpkg.gitTreeState=clean -X $vpkg.gitCommit= -X $vpkg.buildDate=$date"
	done
	local pkgs=()
	for b in "${todo[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
	log "k8s: building ${todo[*]} (cold build cache: ~5 min on 2 cores; log: $LOGS/k8s-build.log)"
	(cd "$dir" && run_logged k8s-build "${NICE[@]}" "$GO" build -trimpath -ldflags "$ld" -o "$BIN/" "${pkgs[@]}")
	for b in "${todo[@]}"; do stamp "$b" "$k" "$v" "k8s.io/kubernetes@$v"; done
	log "k8s: built ${todo[*]} $v"
}

# ---------------------------------------------------------------------------
# 2. etcd.  go.etcd.io/etcd/server/v3 (v3.6.17) has a main.go at its root calling
# etcdmain.Main(os.Args), but its go.mod replaces api/v3, client/pkg/v3, client/v3
# and pkg/v3 with ../ paths, so `go install` refuses it: a consumer module with
# the same 3-line main.go builds it; MVS takes the sibling modules at the version
# server/v3's go.mod requires.  The version printed by `etcd --version` is the
# constant go.etcd.io/etcd/api/v3/version.Version; GitSHA is an ldflag var there.
# v3.6.17 is the newest v3.6.x that `go list -m -versions` lists on this proxy.
# ---------------------------------------------------------------------------
step_etcd() {
	local k=$(key "$ETCD_WANT")
	if fresh etcd "$k"; then log "etcd: $ETCD_WANT present, skipping"; return; fi
	log "etcd: resolving go.etcd.io/etcd/server/v3 $ETCD_WANT"
	local v dir
	v=$(resolve go.etcd.io/etcd/server/v3 "$ETCD_WANT" $ETCD_FALLBACK) || die "etcd: no go.etcd.io/etcd/server/v3 version served among $ETCD_WANT $ETCD_FALLBACK"
	[[ $v == "$ETCD_WANT" ]] || log "etcd: WARNING $ETCD_WANT not served, using $v"
	dir=$SRC/etcd-$v
	mkdir -p "$dir"
	cat >"$dir/go.mod" <<-EOM
	// Generated by tests/envtest/build.sh: consumer module for go.etcd.io/etcd/server/v3 $v
	module cd4ml.local/envtest/etcd

	go 1.26.0

	require go.etcd.io/etcd/server/v3 $v
	EOM
	cat >"$dir/main.go" <<-'EOM'
	// Generated by tests/envtest/build.sh: the etcd server main (same as go.etcd.io/etcd/server/v3's main.go).
	package main

	import (
		"os"

		"go.etcd.io/etcd/server/v3/etcdmain"
	)

	func main() { etcdmain.Main(os.Args) }
	EOM
	log "etcd: go mod tidy in $dir"
	(cd "$dir" && run_logged etcd-tidy "$GO" mod tidy)
	log "etcd: building etcd $v"
	(cd "$dir" && run_logged etcd-build "${NICE[@]}" "$GO" build -trimpath -ldflags "-s -w" -o "$BIN/etcd" .)
	stamp etcd "$k" "$v" "go.etcd.io/etcd/server/v3@$v"
	log "etcd: built etcd $v"
}

# ---------------------------------------------------------------------------
# 3. kwok.  sigs.k8s.io/kwok v0.8.0's go.mod has no replace directives, so plain
# `go install` works; its version is the constant sigs.k8s.io/kwok/pkg/consts.Version
# ("0.8.0" in pkg/consts/consts.go), no ldflag needed.  Stage configs are copied
# from the module's kustomize/stage/ tree (node/fast = node-initialize,
# node/heartbeat(-with-lease), pod/fast, pod/general = ready + complete for Jobs,
# volume/fast = PV/PVC lifecycle + a StorageClass), keeping the directory layout
# (pod/fast and pod/general have files of the same names).  kustomization.yaml,
# README.md, embed.go and testdata/ are not stages and are left out.
# ---------------------------------------------------------------------------
KWOK_STAGE_DIRS=(node/fast node/heartbeat node/heartbeat-with-lease pod/fast pod/general volume/fast)
step_kwok() {
	local k=$(key "$KWOK_WANT") v
	if fresh kwok "$k" && [[ -f $STAGES/.stamp && "$(cat "$STAGES/.stamp")" == "$k" ]]; then
		log "kwok: $KWOK_WANT and its stages present, skipping"; return
	fi
	v=$(resolve sigs.k8s.io/kwok "$KWOK_WANT" $KWOK_FALLBACK) || die "kwok: sigs.k8s.io/kwok $KWOK_WANT not served"
	if ! fresh kwok "$k"; then
		log "kwok: go install sigs.k8s.io/kwok/cmd/kwok@$v"
		GOBIN=$BIN run_logged kwok-install "${NICE[@]}" "$GO" install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$v"
		stamp kwok "$k" "$v" "sigs.k8s.io/kwok@$v"
	fi
	local mdir d f n=0
	mdir=$(moddir sigs.k8s.io/kwok "$v")
	rm -rf "$STAGES"; mkdir -p "$STAGES"
	for d in "${KWOK_STAGE_DIRS[@]}"; do
		[[ -d $mdir/kustomize/stage/$d ]] || die "kwok: $mdir/kustomize/stage/$d missing"
		mkdir -p "$STAGES/$d"
		for f in "$mdir/kustomize/stage/$d"/*.yaml; do
			[[ $(basename "$f") == kustomization.yaml ]] && continue
			install -m 0644 "$f" "$STAGES/$d/"; n=$((n + 1))
		done
	done
	echo "$k" >"$STAGES/.stamp"
	log "kwok: kwok $v, $n stage files in $STAGES"
}

# mirror_tag REPO WANT -> WANT if the bare mirror has that tag, else its newest plain vX.Y.Z tag below WANT
mirror_tag() {
	local git_dir=$MIRRORS/$1/repo
	[[ -d $git_dir ]] || return 1
	if git --git-dir="$git_dir" rev-parse -q --verify "refs/tags/$2" >/dev/null; then echo "$2"; return 0; fi
	git --git-dir="$git_dir" tag -l 'v[0-9]*' | grep -E '^v[0-9]+\.[0-9]+\.[0-9]+$' |
		{ cat; echo "$2"; } | sort -V -u | awk -v w="$2" '$0==w{print prev; exit} {prev=$0}' | grep . ||
		return 1
}

# ---------------------------------------------------------------------------
# 4. Pulumi CLI + Python language host.
# github.com/pulumi/pulumi/pkg/v3's go.mod (v3.274.0) replaces sdk/v3 with ../sdk
# and github.com/atotto/clipboard with github.com/tgummerer/clipboard, so
# `go install` refuses it: a consumer module requires pkg/v3 + sdk/v3 at the same
# version and repeats the clipboard replace.  Version: the CLI prints
# github.com/pulumi/pulumi/sdk/v3/go/common/version.Version (set by the linker,
# sdk/go/common/version/version.go).
# The language host is its own module, github.com/pulumi/pulumi/sdk/python/cmd/
# pulumi-language-python/v3 (sdk/python/cmd/pulumi-language-python/go.mod), and
# the proxy serves no version of it (403 for v3.272.0, v3.274.0, v3.276.0 and for
# the version list).  It is a single main.go over sdk/v3 (python/toolchain) and
# pkg/v3 (codegen/python); that main.go is exported from the pulumi/pulumi git
# mirror at the newest tag <= the CLI version and compiled inside the same
# consumer module, against the same pkg/v3 + sdk/v3.
# ---------------------------------------------------------------------------
# The language host runs two scripts that ship beside it (sdk/python/Makefile,
# targets install/dist: cp ./cmd/pulumi-language-python-exec ./dist/pulumi-resource-pulumi-python
# next to pulumi-language-python); they are in the sdk/v3 module zip, copied from there.
PULUMI_BINS=(pulumi pulumi-language-python)
PULUMI_SCRIPTS=(python/cmd/pulumi-language-python-exec python/dist/pulumi-resource-pulumi-python)
step_pulumi() {
	local k=$(key "$PULUMI_WANT") b todo=() scripts_ok=1
	for b in "${PULUMI_BINS[@]}"; do fresh "$b" "$k" || todo+=("$b"); done
	for b in "${PULUMI_SCRIPTS[@]}"; do fresh "$(basename "$b")" "$k" || scripts_ok=; done
	if [[ ${#todo[@]} -eq 0 && -n $scripts_ok ]]; then log "pulumi: ${PULUMI_BINS[*]} (asked $PULUMI_WANT) present, skipping"; return; fi
	log "pulumi: resolving github.com/pulumi/pulumi/pkg/v3 $PULUMI_WANT"
	local v
	v=$(resolve github.com/pulumi/pulumi/pkg/v3 "$PULUMI_WANT" $PULUMI_FALLBACK) || die "pulumi: no pkg/v3 version served among $PULUMI_WANT $PULUMI_FALLBACK"
	[[ $v == "$PULUMI_WANT" ]] || log "pulumi: WARNING pkg/v3 $PULUMI_WANT not served, using nearest served $v"
	resolve github.com/pulumi/pulumi/sdk/v3 "$v" >/dev/null || die "pulumi: sdk/v3 $v not served"
	local sdir
	sdir=$(moddir github.com/pulumi/pulumi/sdk/v3 "$v")
	for b in "${PULUMI_SCRIPTS[@]}"; do
		[[ -f $sdir/$b ]] || die "pulumi: $b missing from github.com/pulumi/pulumi/sdk/v3@$v"
		install -m 0755 "$sdir/$b" "$BIN/"
		stamp "$(basename "$b")" "$k" "$v" "github.com/pulumi/pulumi/sdk/v3@$v $b"
	done
	log "pulumi: installed $(for b in "${PULUMI_SCRIPTS[@]}"; do printf '%s ' "$(basename "$b")"; done)from sdk/v3@$v"
	if [[ ${#todo[@]} -eq 0 ]]; then log "pulumi: ${PULUMI_BINS[*]} present"; return; fi
	local pdir dir=$SRC/pulumi-$v lh_tag lh_src
	pdir=$(moddir github.com/pulumi/pulumi/pkg/v3 "$v")
	mkdir -p "$dir"
	lh_tag=$(mirror_tag pulumi+pulumi "$v") || die "pulumi: no pulumi/pulumi mirror tag <= $v under $MIRRORS (fetch github:pulumi/pulumi)"
	if resolve github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 "$v" >/dev/null 2>&1; then
		lh_src=proxy
		log "pulumi: language host module served at $v"
		rm -rf "$dir/pulumi-language-python"
	else
		lh_src="pulumi/pulumi@$lh_tag main.go (mirror)"
		log "pulumi: language host module not served; exporting its main.go from the pulumi/pulumi mirror at $lh_tag"
		mirror_export_tree pulumi+pulumi "$lh_tag" sdk/python/cmd/pulumi-language-python "$dir/pulumi-language-python"
		rm -f "$dir/pulumi-language-python"/{go.mod,go.sum,*_test.go}
		rm -rf "$dir/pulumi-language-python/testdata"
	fi
	{
		echo "// Generated by tests/envtest/build.sh: consumer module for github.com/pulumi/pulumi/pkg/v3 $v"
		echo "module cd4ml.local/envtest/pulumi"
		echo
		sed -n 's/^go \(.*\)/go \1/p' "$pdir/go.mod"
		echo
		echo "require ("
		echo "	github.com/pulumi/pulumi/pkg/v3 $v"
		echo "	github.com/pulumi/pulumi/sdk/v3 $v"
		if [[ $lh_src == proxy ]]; then echo "	github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 $v"; fi
		echo ")"
		echo
		# every non-local replace of pkg/v3's go.mod (local ones point into the pulumi repo)
		grep -E '^replace .* => [^.]' "$pdir/go.mod" || true
		echo
		echo "tool github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
		if [[ $lh_src == proxy ]]; then echo "tool github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3"; fi
	} >"$dir/go.mod"
	log "pulumi: go mod tidy in $dir"
	(cd "$dir" && run_logged pulumi-tidy "$GO" mod tidy)
	local ld="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v" pkgs=()
	for b in "${todo[@]}"; do
		case $b in
		pulumi) pkgs+=(github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) ;;
		pulumi-language-python)
			if [[ $lh_src == proxy ]]; then pkgs+=(github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3)
			else pkgs+=(./pulumi-language-python); fi ;;
		esac
	done
	log "pulumi: building ${todo[*]} (cold build cache: ~4 min on 2 cores; log: $LOGS/pulumi-build.log)"
	(cd "$dir" && run_logged pulumi-build "${NICE[@]}" "$GO" build -trimpath -ldflags "$ld" -o "$BIN/" "${pkgs[@]}")
	[[ -x $BIN/pulumi-language-python ]] || { [[ -x $BIN/v3 ]] && mv "$BIN/v3" "$BIN/pulumi-language-python"; }
	for b in "${todo[@]}"; do
		if [[ $b == pulumi-language-python ]]; then stamp "$b" "$k" "$v" "$lh_src + pkg/v3,sdk/v3@$v"
		else stamp "$b" "$k" "$v" "github.com/pulumi/pulumi/pkg/v3@$v"; fi
	done
	log "pulumi: built ${todo[*]} $v"
}

# ---------------------------------------------------------------------------
# 5. Resource providers, as Pulumi plugins bin/pulumi-resource-<name>.
# None of the three provider modules is served at the versions requirements.txt
# pins: every provider/v4 (kubernetes, random) and provider (command) version
# answers 403, and the only version the proxy lists for pulumi-kubernetes/provider/v4
# is the pseudo-version v4.0.0-20260115033456-f47bc2d6f199 (= v4.25.0 + 14 commits,
# by `git describe` in the mirror).  The pulumi-command and pulumi-random tags
# are v1.2.1 / v4.21.1 at the repo root while the modules live in provider/, so
# the proxy never had those as semver versions of .../provider; their commits'
# pseudo-versions answer 403 too.  So each provider's source is taken from the
# first that works of: (a) the proxy at the wanted version, (b) the provider/
# tree of the search tool's bare git mirror (MIRRORS/<org>+<repo>/repo) at the
# newest tag <= the wanted version, exported with `git archive` into src/.
# Dependencies always come from the proxy.  Dependency versions the proxy does
# not serve (pulumi/pkg/v3 is served only at some versions) are raised to the
# lowest served version >= the required one.  The binary reports the version
# requirements.txt pins (ldflag on the repo's pkg/version.Version, from each
# repo's Makefile VERSION_PATH), which is what the Python SDK asks the engine for;
# bin/VERSIONS and the stamps record the source actually compiled.
# ---------------------------------------------------------------------------

# lowest_served_ge MODULE VERSION -> lowest version >= VERSION in the proxy's list
lowest_served_ge() {
	"$GO" list -m -versions "$1" 2>/dev/null | tr ' ' '\n' | tail -n +2 | grep -E '^v[0-9]+\.[0-9]+\.[0-9]+$' |
		{ cat; echo "$2"; } | sort -V -u | awk -v w="$2" 'found{print; exit} $0==w{found=1}'
}
# served MODULE VERSION -> 0 when the proxy serves exactly that version
served() { "$GO" mod download -json "$1@$2" 2>/dev/null | grep -q '"Dir"'; }

# mirror_missing REPO TAG SUBDIR -> paths whose blobs the mirror does not hold
# (the mirror omits its largest files: pulumi-kubernetes' schema.json, ...)
mirror_missing() {
	local git_dir=$MIRRORS/$1/repo
	git --git-dir="$git_dir" ls-tree -r "$2" -- "$3" | awk '$2=="blob"{print $3" "$4}' |
		while read -r id path; do echo "$id $path"; done >"$LOGS/.tree"
	awk '{print $1}' "$LOGS/.tree" | git --git-dir="$git_dir" cat-file --batch-check | awk '$2=="missing"{print $1}' |
		while read -r id; do awk -v id="$id" '$1==id{print $2}' "$LOGS/.tree"; done
}
# mirror_export_tree REPO TAG SUBDIR DEST -> DEST/ holds SUBDIR of REPO at TAG (git archive), minus blobs the mirror lacks
mirror_export_tree() {
	local git_dir=$MIRRORS/$1/repo f excl=()
	while read -r f; do [[ -n $f ]] && excl+=(":(exclude)$f"); done < <(mirror_missing "$1" "$2" "$3")
	[[ ${#excl[@]} -eq 0 ]] || log "  mirror lacks ${#excl[@]} file(s) of $1@$2:$3: ${excl[*]#:(exclude)}"
	rm -rf "$4.tmp" && mkdir -p "$4.tmp"
	# git archive may print "invalid object" for unrelated missing blobs and still succeed
	git --git-dir="$git_dir" archive --format=tar "$2" -- "$3" "${excl[@]}" 2>"$LOGS/git-archive.log" | tar -x -C "$4.tmp" ||
		{ cat "$LOGS/git-archive.log" >&2; die "could not export $1@$2:$3 from $git_dir"; }
	if [[ $3 == . ]]; then rm -rf "$4" && mv "$4.tmp" "$4"
	else rm -rf "$4" && mv "$4.tmp/$3" "$4" && rm -rf "$4.tmp"; fi
}

# provider_source NAME MODULE WANT MIRROR -> sets PSRC (writable module root) and PFROM (description)
provider_source() {
	local name=$1 mod=$2 want=$3 mirror=$4 tag d
	if served "$mod" "$want"; then
		d=$(moddir "$mod" "$want")
		PSRC=$SRC/pulumi-$name-$want
		rm -rf "$PSRC" && cp -r "$d" "$PSRC" && chmod -R u+w "$PSRC"
		PFROM="$mod@$want (proxy)" PTAG=
		return
	fi
	log "  $mod@$want not served by the proxy"
	tag=$(mirror_tag "$mirror" "$want") || die "$name: $mod@$want is not served and no tag <= $want in $MIRRORS/$mirror (use the search tool's fetch github:${mirror/+//})"
	[[ $tag == "$want" ]] || log "  WARNING: mirror $mirror has no $want; nearest tag is $tag"
	PSRC=$SRC/pulumi-$name-$tag PTAG=$tag
	mirror_export_tree "$mirror" "$tag" provider "$PSRC"
	PFROM="github.com/${mirror/+//}@$tag provider/ (git mirror $(git --git-dir="$MIRRORS/$mirror/repo" rev-parse --short=12 "$tag^{commit}"))"
}

# fix_deps DIR : drop replaces into ../ paths that are not there, raise unserved pulumi versions
fix_deps() {
	local dir=$1 m v nv
	(
		cd "$dir"
		"$GO" mod edit -json | python3 -c '
import json, os, sys
for r in json.load(sys.stdin).get("Replace") or []:
    new = r["New"]
    if not new.get("Version") and not os.path.isdir(new["Path"]):
        print(r["Old"]["Path"])' | while read -r m; do
			log "  dropping replace $m => (a path outside the exported tree); the proxy provides it if imported"
			"$GO" mod edit -dropreplace="$m" -droprequire="$m"
		done
		for m in github.com/pulumi/pulumi/pkg/v3 github.com/pulumi/pulumi/sdk/v3; do
			v=$("$GO" mod edit -json | python3 -c "
import json, sys
print(next((r['Version'] for r in json.load(sys.stdin).get('Require') or [] if r['Path']=='$m'), ''))")
			[[ -n $v ]] || continue
			served "$m" "$v" && continue
			nv=$(lowest_served_ge "$m" "$v")
			[[ -n $nv ]] || die "$dir: $m@$v not served and no served version above it"
			log "  $m@$v not served; requiring $nv (lowest served >= $v)"
			"$GO" mod edit -require="$m@$nv"
		done
	)
}

# raise_version MODULE VERSION -> the lowest version above VERSION that the proxy
# serves, else the highest below it.  Candidates: the proxy's version list (which
# can be incomplete: each candidate is fetched) and, for a pseudo-version
# vX.Y.Z-0.<date>-<hash>, the release it precedes (vX.Y.Z) and its base (vX.Y.Z-1),
# the nearest releases either side of that commit.
raise_version() {
	local m=$1 v=$2 c list up=() down=() x y z
	list=$("$GO" list -m -versions "$m" 2>/dev/null | tr ' ' '\n' | tail -n +2 | grep -E '^v[0-9]+\.[0-9]+\.[0-9]+$' || true)
	if [[ $v =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)-0\.[0-9]{14}-[0-9a-f]{12}$ ]]; then
		x=${BASH_REMATCH[1]} y=${BASH_REMATCH[2]} z=${BASH_REMATCH[3]}
		list+=$'\n'"v$x.$y.$z"
		((z == 0)) || list+=$'\n'"v$x.$y.$((z - 1))"
	fi
	mapfile -t up < <({ echo "$list"; echo "$v"; } | grep . | sort -V -u | awk -v w="$v" 'f{print} $0==w{f=1}')
	mapfile -t down < <({ echo "$list"; echo "$v"; } | grep . | sort -V -u | awk -v w="$v" '$0==w{exit} {print}' | tac)
	for c in "${up[@]}" "${down[@]}"; do
		[[ -n $c ]] || continue
		served "$m" "$c" && { echo "$c"; return 0; }
	done
	return 1
}

# dep_from_mirror DIR MODULE PSEUDO HASH : when the search tool's git mirror of the
# module's repository (MIRRORS/<org>+<repo>/repo) holds the pseudo-version's commit,
# export that commit into src/deps/ and replace the module with it (exact source).
dep_from_mirror() {
	local dir=$1 m=$2 v=$3 hash=$4 org repo sub git_dir dest
	[[ $m =~ ^github\.com/([^/]+)/([^/]+)(/.*)?$ ]] || return 1
	org=${BASH_REMATCH[1]} repo=${BASH_REMATCH[2]} sub=${BASH_REMATCH[3]#/}
	git_dir=$MIRRORS/$org+$repo/repo
	[[ -d $git_dir ]] && git --git-dir="$git_dir" cat-file -e "$hash^{commit}" 2>/dev/null || return 1
	if [[ -n $sub ]] && ! git --git-dir="$git_dir" cat-file -e "$hash:$sub/go.mod" 2>/dev/null; then
		sub=${sub%/v[0-9]*}   # major-version suffix without a directory of its own
	fi
	git --git-dir="$git_dir" cat-file -e "$hash:${sub:+$sub/}go.mod" 2>/dev/null || return 1
	dest=$SRC/deps/$repo${sub:+-${sub//\//-}}@$v
	[[ -f $dest/go.mod ]] || mirror_export_tree "$org+$repo" "$hash" "${sub:-.}" "$dest"
	log "  $m@$v not served; using that exact commit from the git mirror $org+$repo -> $dest"
	(cd "$dir" && "$GO" mod edit -replace="$m=$dest")
}

# go_build_raise DIR LOGNAME OUT LDFLAGS PKG : `go build -mod=mod`; whenever it stops
# at a dependency version the proxy refuses (403 on .info/.mod/.zip), use its exact
# commit from a git mirror when there is one (dep_from_mirror), else require the
# nearest served version above it, or replace it by the nearest below (raise_version),
# and try again.  go build rather
# than go mod tidy: tidy would also resolve the test-only dependencies of every
# package in the module, which are not needed and not all served.
go_build_raise() {
	local dir=$1 name=$2 out=$3 ld=$4 pkg=$5 round mv m v nv bad
	for round in 1 2 3 4 5 6 7 8 9 10; do
		if (cd "$dir" && "${NICE[@]}" "$GO" build -mod=mod -trimpath -ldflags "$ld" -o "$out" "$pkg") >"$LOGS/$name.log" 2>&1; then
			return 0
		fi
		bad=$(grep -oE '[A-Za-z0-9._~/-]+@v[^: ]+: reading [^ ]+/@v/[^ ]+\.(zip|mod|info): 403' "$LOGS/$name.log" | sed 's/: reading.*//' | sort -u || true)
		if [[ -z $bad ]]; then
			tail -40 "$LOGS/$name.log" >&2
			die "$name failed (full log: $LOGS/$name.log)"
		fi
		for mv in $bad; do
			m=${mv%@*} v=${mv##*@}
			if [[ $v =~ [.-][0-9]{14}-([0-9a-f]{12})$ ]] && dep_from_mirror "$dir" "$m" "$v" "${BASH_REMATCH[1]}"; then
				continue
			fi
			nv=$(raise_version "$m" "$v") || die "$name: $m@$v is not served and the proxy serves no other version of it"
			if [[ $(printf '%s\n' "$v" "$nv" | sort -V | tail -1) == "$nv" ]]; then
				log "  $m@$v not served; requiring $nv (nearest served above)"
				(cd "$dir" && "$GO" mod edit -require="$m@$nv")
			else # lower: MVS would pick the unserved one again, so replace every version of it
				log "  $m@$v not served, nor anything above; replacing it with $nv (nearest served below)"
				(cd "$dir" && "$GO" mod edit -replace="$m=$m@$nv")
			fi
		done
	done
	die "$name: still failing after $round rounds of raising unserved dependencies (log: $LOGS/$name.log)"
}

# patch_src FILE OLD NEW WHY : exact-text edit of the cache copy of upstream source,
# applied only where OLD is present (so a source that no longer needs it is left alone).
patch_src() {
	python3 - "$@" <<-'EOP' || die "patch of $1 failed"
	import sys
	path, old, new, why = sys.argv[1:5]
	text = open(path).read()
	if old in text:
	    open(path, "w").write(text.replace(old, new))
	    print(f"[envtest]   patched {path.rsplit('/src/', 1)[-1]}: {why}")
	EOP
}

build_provider() { # NAME MODULE WANT MIRROR
	local name=$1 mod=$2 want=$3 mirror=$4 bin=pulumi-resource-$1 k ld
	k=$(key "$want")
	if fresh "$bin" "$k"; then log "$bin: $want present, skipping"; return; fi
	log "$bin: locating source for $mod $want"
	provider_source "$name" "$mod" "$want" "$mirror"
	log "$bin: source $PFROM -> $PSRC"
	fix_deps "$PSRC"
	"provider_prepare_$name" "$PSRC" "${want#v}"
	ld="-s -w -X $mod/pkg/version.Version=${want#v}"
	log "$bin: building (log: $LOGS/$bin-build.log)"
	go_build_raise "$PSRC" "$bin-build" "$BIN/$bin" "$ld" "./cmd/$bin"
	stamp "$bin" "$k" "${want#v}" "$PFROM"
	log "$bin: built, reports ${want#v}"
}

# pulumi-kubernetes: provider/cmd/pulumi-resource-kubernetes/main.go embeds
# schema-embed.json, terraform-mapping-embed.json (both .gitignored, written by
# `VERSION=x go generate` running generate.go) and helm-mapping.json.  generate.go
# reads the committed schema.json, which the git mirror does not hold (blob
# 9c927da9e707 at v4.32.0 is "missing").  The Makefile's `schema` target makes it:
# pulumi-gen-kubernetes schema provider/pkg/gen/openapi-specs/swagger-$(KUBE_VERSION).json
# with KUBE_VERSION=v1.36.1 (Makefile at v4.32.0), merging in legacy specs
# swagger-v1.{17,18,19,20,26,28,30,31}.0.json that it downloads unless present
# (cmd/pulumi-gen-kubernetes/download.go).  All nine are api/openapi-spec/swagger.json
# of k8s.io/kubernetes module zips the proxy serves.  After writing schema.json the
# generator writes terraform-mapping.json from cmd/pulumi-gen-kubernetes/terraform.json,
# also absent from the mirror; so it runs in a scratch base dir, its panic there is
# expected, and only schema.json is kept (terraform-mapping.json is committed and present).
provider_prepare_kubernetes() {
	local psrc=$1 version=$2 kube spec base cmd=cmd/pulumi-resource-kubernetes
	if [[ ! -f $psrc/$cmd/schema.json ]]; then
		[[ -n $PTAG ]] || die "kubernetes: schema.json missing and source not from a git tag"
		kube=$(git --git-dir="$MIRRORS/pulumi+pulumi-kubernetes/repo" show "$PTAG:Makefile" | sed -n 's/^KUBE_VERSION *?= *//p')
		[[ $kube =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "kubernetes: no KUBE_VERSION in the Makefile at $PTAG"
		log "  schema.json absent: regenerating it as the Makefile's schema target does (KUBE_VERSION=$kube)"
		base=$SRC/pulumi-kubernetes-schemagen
		rm -rf "$base" && mkdir -p "$base/provider/pkg/gen/openapi-specs" "$base/provider/cmd/pulumi-resource-kubernetes" "$base/sdk/schema"
		for spec in "$kube" v1.17.0 v1.18.0 v1.19.0 v1.20.0 v1.26.0 v1.28.0 v1.30.0 v1.31.0; do
			served k8s.io/kubernetes "$spec" || die "kubernetes schema: k8s.io/kubernetes@$spec (for its swagger.json) not served"
			install -m 0644 "$(moddir k8s.io/kubernetes "$spec")/api/openapi-spec/swagger.json" "$base/provider/pkg/gen/openapi-specs/swagger-$spec.json"
		done
		# cmd/pulumi-gen-kubernetes imports github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3/codegen
		# (only for the `dotnet` SDK target: LanguageResources, GeneratePackage); the proxy
		# serves no version of that module, so a stub module that fails those two calls
		# stands in for it (src/pulumi-language-dotnet-stub, a replace in the cache copy).
		if ! served github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3 \
			"$(cd "$psrc" && "$GO" mod edit -json | python3 -c 'import json,sys; print(next((r["Version"] for r in json.load(sys.stdin)["Require"] if r["Path"]=="github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3"), "none"))')"; then
			local stub=$SRC/pulumi-language-dotnet-stub
			mkdir -p "$stub/codegen"
			printf '%s\n' "// Generated by tests/envtest/build.sh: stand-in for an unserved module; only the schema generator imports it." \
				"module github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3" "" "go 1.25" >"$stub/go.mod"
			cat >"$stub/codegen/codegen.go" <<-'EOM'
			// Generated by tests/envtest/build.sh: stub of pulumi-language-dotnet's codegen package.
			// The real module is not served by the Go module proxy here; C# SDK generation is unavailable.
			package codegen

			import (
				"errors"

				"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
			)

			var errStub = errors.New("pulumi-language-dotnet codegen is a stub in this build")

			type LanguageResource struct{ Name, Package, Token string }

			func LanguageResources(tool string, pkg *schema.Package) (map[string]LanguageResource, error) {
				return nil, errStub
			}

			func GeneratePackage(tool string, pkg *schema.Package, extraFiles map[string][]byte,
				localDependencies map[string]string) (map[string][]byte, error) {
				return nil, errStub
			}
			EOM
			log "  pulumi-language-dotnet/v3 not served: using a stub for the schema generator's unused dotnet target"
			(cd "$psrc" && "$GO" mod edit -replace="github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3=$stub")
		fi
		kubernetes_api_patches "$psrc"
		log "  building pulumi-gen-kubernetes (log: $LOGS/kubernetes-gen-build.log)"
		go_build_raise "$psrc" kubernetes-gen-build "$base/pulumi-gen-kubernetes" "" ./cmd/pulumi-gen-kubernetes
		(cd "$base" && ./pulumi-gen-kubernetes -version="$version" schema "provider/pkg/gen/openapi-specs/swagger-$kube.json" "$base" >"$LOGS/kubernetes-schemagen.log" 2>&1) || true
		[[ -s $base/provider/cmd/pulumi-resource-kubernetes/schema.json ]] ||
			{ tail -20 "$LOGS/kubernetes-schemagen.log" >&2; die "kubernetes schema: pulumi-gen-kubernetes wrote no schema.json"; }
		grep -q 'terraform.json' "$LOGS/kubernetes-schemagen.log" ||
			log "  note: pulumi-gen-kubernetes did not stop at terraform.json; see $LOGS/kubernetes-schemagen.log"
		install -m 0644 "$base/provider/cmd/pulumi-resource-kubernetes/schema.json" "$psrc/$cmd/schema.json"
		log "  schema.json regenerated: git blob $(git hash-object "$psrc/$cmd/schema.json") (the tag's committed one: $(git --git-dir="$MIRRORS/pulumi+pulumi-kubernetes/repo" rev-parse "$PTAG:provider/$cmd/schema.json"))"
	fi
	kubernetes_api_patches "$psrc"
	log "  go generate: schema-embed.json, terraform-mapping-embed.json (VERSION=$version)"
	go_build_raise "$psrc" kubernetes-generate-build "$SRC/.generate-kubernetes" "" "./$cmd/generate.go"
	(cd "$psrc/$cmd" && VERSION=$version run_logged kubernetes-generate "$SRC/.generate-kubernetes")
}
# v4.32.0 requires pulumi pkg/v3 v3.243.0, which the proxy does not serve; the
# nearest served, v3.248.0 (v3.229.0 below is overruled by pulumi/esc v0.25.0's
# requirement of v3.243.0), changed two APIs it uses (checked in the pulumi mirror,
# pkg/codegen/schema/schema.go at v3.243.0 vs v3.248.0): PackageSpec.Provider became
# *ResourceSpec, and ImportSpec gained a Loader argument.
kubernetes_api_patches() {
	local psrc=$1 pkgv
	pkgv=$(cd "$psrc" && "$GO" mod edit -json | python3 -c 'import json,sys; print(next((r["Version"] for r in json.load(sys.stdin)["Require"] if r["Path"]=="github.com/pulumi/pulumi/pkg/v3"), ""))')
	[[ $(printf '%s
' "$pkgv" v3.248.0 | sort -V | head -1) == v3.248.0 ]] || return 0
	patch_src "$psrc/pkg/gen/schema.go" $'\t\tProvider: pschema.ResourceSpec{' $'\t\tProvider: &pschema.ResourceSpec{' \
		"PackageSpec.Provider is a pointer in pulumi pkg/v3 $pkgv"
	patch_src "$psrc/cmd/pulumi-gen-kubernetes/main.go" 'schema.ImportSpec(pkgSpec, nil, schema.ValidationOptions{})' \
		'schema.ImportSpec(pkgSpec, nil, nil, schema.ValidationOptions{})' "ImportSpec takes a Loader in pulumi pkg/v3 $pkgv"
}

# pulumi-random: cmd/pulumi-resource-random/main.go embeds schema-embed.json
# (written by `VERSION=x go run ./generate.go`, Makefile) and the committed
# bridge-metadata.json.  provider/go.mod replaces the unpublished
# github.com/terraform-providers/terraform-provider-random/shim with ./shim,
# which the exported provider/ tree contains.
provider_prepare_random() {
	local psrc=$1 version=$2
	[[ -f $psrc/cmd/pulumi-resource-random/schema.json ]] || die "pulumi-random: schema.json missing from the source"
	[[ -d $psrc/shim ]] || die "pulumi-random: shim/ missing from the source"
	log "  go generate: schema-embed.json (VERSION=$version)"
	go_build_raise "$psrc" random-generate-build "$SRC/.generate-random" "" ./cmd/pulumi-resource-random/generate.go
	(cd "$psrc/cmd/pulumi-resource-random" && VERSION=$version run_logged random-generate "$SRC/.generate-random")
}
# pulumi-command: built with pulumi-go-provider, no embedded files.
provider_prepare_command() { :; }

step_providers() {
	build_provider kubernetes github.com/pulumi/pulumi-kubernetes/provider/v4 "$PULUMI_K8S_WANT" pulumi+pulumi-kubernetes
	build_provider random github.com/pulumi/pulumi-random/provider/v4 "$PULUMI_RANDOM_WANT" pulumi+pulumi-random
	build_provider command github.com/pulumi/pulumi-command/provider "$PULUMI_COMMAND_WANT" pulumi+pulumi-command
}

# ---------------------------------------------------------------------------
# 6. bin/VERSIONS (name, version it reports, source compiled) and how to use the cache.
# PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: sdk/go/common/env/env.go (v3.274.0,
# DisableAutomaticPluginAcquisition, with util/env's "PULUMI_" prefix).  Plugins on
# PATH are used ahead of installed ones ("ambient" plugins,
# sdk/go/common/workspace/plugins.go GetPluginPath) unless PULUMI_IGNORE_AMBIENT_PLUGINS is set.
# ---------------------------------------------------------------------------
ALL_BINS=(etcd "${K8S_BINS[@]}" kwok "${PULUMI_BINS[@]}" pulumi-language-python-exec pulumi-resource-pulumi-python pulumi-resource-kubernetes pulumi-resource-random pulumi-resource-command)
step_versions() {
	local b missing=() tmp=$BIN/VERSIONS.tmp
	: >"$tmp"
	for b in "${ALL_BINS[@]}"; do
		if [[ -x $BIN/$b && -f $STAMPS/$b ]]; then
			printf '%s %s\n' "$b" "$(sed -n 2p "$STAMPS/$b")" >>"$tmp"
		else
			missing+=("$b")
		fi
	done
	mv "$tmp" "$BIN/VERSIONS"
	log "versions: wrote $BIN/VERSIONS ($(wc -l <"$BIN/VERSIONS") binaries)"
	[[ ${#missing[@]} -eq 0 ]] || log "versions: not built yet: ${missing[*]}"
}

usage_note() {
	cat <<-EOM
	[envtest] Done. To use the cache:
	  export PATH="$BIN:\$PATH"
	  export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true   # never download plugins
	  # providers on PATH are used as "ambient" plugins; or install them into PULUMI_HOME:
	  pulumi plugin install resource kubernetes ${PULUMI_K8S_WANT#v} --file "$BIN/pulumi-resource-kubernetes"
	  pulumi plugin install resource random ${PULUMI_RANDOM_WANT#v} --file "$BIN/pulumi-resource-random"
	  pulumi plugin install resource command ${PULUMI_COMMAND_WANT#v} --file "$BIN/pulumi-resource-command"
	  kwok stage configs: $STAGES
	EOM
}

main() {
	local steps=("$@")
	[[ ${#steps[@]} -gt 0 ]] || steps=(k8s etcd kwok pulumi providers)
	local s
	for s in "${steps[@]}"; do
		declare -F "step_$s" >/dev/null || die "unknown step '$s' (steps: k8s etcd kwok pulumi providers)"
		"step_$s"
	done
	step_versions
	usage_note
}
main "$@"; exit $?   # exit on this line: bash stops reading the file here even if it is edited mid-run
