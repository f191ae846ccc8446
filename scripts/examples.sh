#!/bin/sh
# examples.sh vets and tests every Go module nested under examples/ (a
# directory with its own go.mod, such as examples/orm): `go test ./...` at
# the root does not enter them, since they are modules of their own so that
# their dependencies (gorm, ent) never enter dtx's go.mod. Each replaces
# github.com/dtxhq/dtx with this checkout. Their first run downloads their
# modules from the Go module proxy. Run from anywhere:
#
#	scripts/examples.sh
set -eu
cd "$(dirname "$0")/.."
found=0
for mod in $(find examples -name go.mod -not -path '*/testdata/*' | sort); do
	dir=$(dirname "$mod")
	found=1
	echo "== $dir"
	(cd "$dir" && go vet ./... && go test -race -count=1 -timeout 10m ./...)
done
[ "$found" = 1 ] || { echo "examples.sh: no nested module under examples/" >&2; exit 1; }
