#!/bin/sh
# Build scripts/tlogcheck (Go's golang.org/x/mod/sumdb/tlog and note, the independent checker of
# lapor-sla's Merkle log and signed checkpoints) into the cache, from the Go module proxy.
# Idempotent: a binary built from the same source and module version is reused. Prints its path.
set -eu

MOD_VERSION="v0.43.0"
SOURCE="$(cd "$(dirname "$0")/tlogcheck" && pwd)"
STAMP="$(cat "$SOURCE/main.go" | sha256sum | cut -c1-12)"
CACHE="${LAPOR_CACHE:-$HOME/.cache/lapor-sla}/tlogcheck/$MOD_VERSION-$STAMP"
BINARY="$CACHE/tlogcheck"

if [ -x "$BINARY" ]; then
    echo "$BINARY"
    exit 0
fi
command -v go >/dev/null 2>&1 || { echo "ensure-tlog-checker: go is not installed" >&2; exit 1; }
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$SOURCE/main.go" "$stage/"
(
    cd "$stage"
    go mod init lapor-sla/tlogcheck >/dev/null 2>&1
    go get "golang.org/x/mod@$MOD_VERSION" >/dev/null 2>&1
    go mod tidy >/dev/null 2>&1
    GOFLAGS="${GOFLAGS:--buildvcs=false}" go build -o tlogcheck .
) || { echo "ensure-tlog-checker: building the checker failed" >&2; exit 1; }
mkdir -p "$CACHE"
mv "$stage/tlogcheck" "$BINARY"
echo "$BINARY"
