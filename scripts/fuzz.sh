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
#
# Go 1.26's fuzz coordinator can fail a target that found nothing: when
# -fuzztime runs out, a worker's shutdown may be reported as the bare error
# "context deadline exceeded" (golang/go#75804, fixed in Go 1.27), more
# often on a loaded machine. Such a run wrote no input and printed no test
# failure; it is told apart from a finding by exactly that, and the target is
# fuzzed again (at most twice more). Any other failure stops at once.
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

# inputs lists the inputs saved for target $2 in package dir $1.
inputs() {
	ls "$1/testdata/fuzz/$2" 2>/dev/null || true
}

# coordinator_deadline tells whether the log $1 is the coordinator's bare
# deadline error: the target's FAIL line followed by exactly that error, no
# failing test inside it and no input written.
coordinator_deadline() {
	! grep -q 'Failing input written' "$1" &&
		! grep -q '^    --- FAIL' "$1" &&
		grep -A1 "^--- FAIL: $2 " "$1" | tail -n 1 | grep -qx '    context deadline exceeded'
}

n=0
flakes=0
start=$(date +%s)
log=$(mktemp)
echo "$targets" | {
	while read -r dir name; do
		if [ $# -gt 0 ]; then
			case " $* " in *" $name "*) ;; *) continue ;; esac
		fi
		n=$((n + 1))
		try=1
		while :; do
			echo "fuzz: $dir $name ($fuzztime)"
			before=$(inputs "$dir" "$name")
			if go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "$dir" >"$log" 2>&1; then
				break
			fi
			cat "$log"
			if [ "$try" -lt 3 ] && [ "$before" = "$(inputs "$dir" "$name")" ] && coordinator_deadline "$log" "$name"; then
				echo "fuzz: $name: Go's fuzz coordinator failed on its own -fuzztime deadline with no input found (golang/go#75804); fuzzing it again" >&2
				flakes=$((flakes + 1))
				try=$((try + 1))
				continue
			fi
			rm -f "$log"
			echo "fuzz: FAIL $dir $name" >&2
			exit 1
		done
	done
	rm -f "$log"
	echo "fuzz: ok, $n targets in $(($(date +%s) - start))s ($flakes coordinator deadline retries)"
}
