#!/bin/bash
# The real Gitea the kit pins (infra/platform/gitea.py VERSION), built from the Go module proxy: pure Go,
# the modernc SQLite driver, templates and assets embedded. About 5 minutes cold, 1 minute warm.
# Writes ~/.cache/cd4ml/gitea/gitea-<version> (or $OUT); tests/test_gitea_server.py skips without it.
set -eu
V=${GITEA_VERSION:-1.27.3}
OUT=${OUT:-$HOME/.cache/cd4ml/gitea/gitea-$V}
command -v go >/dev/null || { echo "needs Go (1.26+): https://go.dev/dl/" >&2; exit 1; }
D=$(go mod download -json "code.gitea.io/gitea@v$V" | python3 -c 'import sys, json; print(json.load(sys.stdin)["Dir"])')
S=$(mktemp -d)
trap 'chmod -R u+w "$S"; rm -rf "$S"' EXIT
cp -r "$D"/. "$S"
chmod -R u+w "$S"
cd "$S"
for part in migration options templates public; do CGO_ENABLED=0 go generate -tags bindata "./modules/$part/"; done
mkdir -p "$(dirname "$OUT")"
CGO_ENABLED=0 go build -tags 'bindata sqlite sqlite_unlock_notify' \
  -ldflags "-s -w -X main.Version=$V -X 'main.Tags=bindata sqlite sqlite_unlock_notify'" -o "$OUT" .
"$OUT" --version
