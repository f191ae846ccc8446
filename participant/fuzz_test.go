package participant_test

import (
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/participant"
)

var (
	fuzzIndexRE = regexp.MustCompile(`^[0-9]+$`)
	fuzzOpRE    = regexp.MustCompile(`^[a-z]{1,32}$`)
)

// FuzzBranchFromRequest checks the branch identity a participant reads
// from the Dtx-* headers against the documented rule (a gid of 1-256
// bytes, a branch index of decimal digits up to 2^31-1, an operation of 1-32
// lower-case letters), and that an accepted identity written back as
// headers reads back the same.
func FuzzBranchFromRequest(f *testing.F) {
	for _, s := range [][3]string{
		{"order-1", "0", "action"}, {"order-1", "12", "compensate"}, {"g", "2147483647", "try"}, {"g", "2147483648", "try"},
		{"g", "-0", "cancel"}, {"g", "+1", "confirm"}, {"g", "007", "confirm"}, {"g", " 1", "action"}, {"g", "1", "Action"},
		{"", "1", "action"}, {"g", "", "action"}, {"g", "1", ""}, {"g\x00", "1", "action"}, {"g", "0x1", "action"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, gid, idx, op string) {
		r := httptest.NewRequest(http.MethodPost, "/x", nil)
		for name, v := range map[string]string{dtx.HeaderGID: gid, dtx.HeaderBranch: idx, dtx.HeaderOp: op} {
			if v != "" {
				r.Header[name] = []string{v}
			}
		}
		br, err := participant.BranchFromRequest(r)
		n, perr := strconv.ParseInt(idx, 10, 64)
		want := gid != "" && len(gid) <= 256 && fuzzIndexRE.MatchString(idx) && perr == nil && n <= math.MaxInt32 && fuzzOpRE.MatchString(op)
		if (err == nil) != want {
			t.Fatalf("BranchFromRequest(gid %q, branch %q, op %q) = %+v, %v; the rule says ok=%v", gid, idx, op, br, err, want)
		}
		if err != nil {
			if br != (participant.Branch{}) {
				t.Fatalf("refused headers returned %+v", br)
			}
			return
		}
		if br.GID != gid || int64(br.Index) != n || string(br.Op) != op {
			t.Fatalf("BranchFromRequest(gid %q, branch %q, op %q) = %+v", gid, idx, op, br)
		}
		h := map[string]string{dtx.HeaderGID: br.GID, dtx.HeaderBranch: strconv.Itoa(br.Index), dtx.HeaderOp: string(br.Op)}
		again, err := participant.BranchFromHeaders(func(name string) string { return h[name] })
		if err != nil || again != br {
			t.Fatalf("%+v written as headers reads back as %+v, %v", br, again, err)
		}
	})
}
