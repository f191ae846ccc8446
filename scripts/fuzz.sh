#!/bin/sh
# fuzz.sh runs every Go fuzz target of the module for FUZZTIME each
# (default 3s), one at a time, and stops at the first failure, naming it.
# The targets are found in the *_test.go files (func FuzzXxx(f *testing.F)),
# so a new one is run without being listed here. Run from anywhere:
#
#	scripts/fuzz.sh                  # every target, 3s each
#	FUZZTIME=1m scripts/fuzz.sh      # longer
#	scripts/fuzz.sh FuzzNormalize    # only the targets named
#
# A failing input is written to the package's testdata/fuzz/<target>/;
# commit it with the fix: plain `go test ./...` runs it from then on.
set -eu
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3s}
targets=$(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
	while read -r file; do
		dir=$(dirname "$file")
		sed -n -E 's/^func (Fuzz[A-Za-z0-9_]*)\(f \*testing\.F\).*/\1/p' "$file" | while read -r name; do
			echo "$dir $name"
		done
	done | sort)
n=0
start=$(date +%s)
log=$(mktemp)
echo "$targets" | {
	while read -r dir name; do
		if [ $# -gt 0 ]; then
			case " $* " in *" $name "*) ;; *) continue ;; esac
		fi
		n=$((n + 1))
		echo "fuzz: $dir $name ($fuzztime)"
		if ! go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "$dir" >"$log" 2>&1; then
			cat "$log"
			rm -f "$log"
			echo "fuzz: FAIL $dir $name" >&2
			exit 1
		fi
	done
	rm -f "$log"
	echo "fuzz: ok, $n targets in $(($(date +%s) - start))s"
}
