package participant_test

import (
	"encoding/json"
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

// FuzzDecodeRequest checks the typed handlers' decoding of a request body:
// it never panics; a body it refuses is a BadRequest (answered 400, a
// definite failure); a body it accepts is one JSON value (encoding/json
// accepts it too) whose request validates and, encoded again, decodes to
// the same request.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"item":"apple","qty":2}`, `{"item":"apple","qty":0}`, `{"item":"apple","qty":"2"}`, `{"qty":1.5}`,
		``, `null`, `{}`, `[]`, `{} {}`, `{"item":"a","qty":1} `, `{"item":"\u00e9","qty":9223372036854775807}`,
		`{"item":"a","qty":1,"extra":[1,2]}`, `{"ITEM":"a","qty":1}`, "\xff", `{"item":"a"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := participant.DecodeRequest[reserveReq](body)
		if err != nil {
			if participant.Status(err) != http.StatusBadRequest || !dtx.IsPermanent(err) {
				t.Fatalf("DecodeRequest(%q) refused with %v, which is not a 400 definite failure", body, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("DecodeRequest accepted %q, which is not one JSON value", body)
		}
		if req.Validate() != nil {
			t.Fatalf("DecodeRequest(%q) = %+v, which does not validate", body, req)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		back, err := participant.DecodeRequest[reserveReq](again)
		if err != nil || back != req {
			t.Fatalf("%+v encoded as %s decodes as %+v, %v", req, again, back, err)
		}
	})
}
