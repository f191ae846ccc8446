package participant

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/dtxhq/dtx"
)

// Branch identifies one operation of one branch of a global transaction, as
// sent by the coordinator in the request headers.
type Branch struct {
	// GID is the global transaction id (header Dtx-Gid).
	GID string
	// Index is the branch index, from 0 (header Dtx-Branch).
	Index int
	// Op is the operation: "action" or "compensate" for sagas (header
	// Dtx-Op). Other patterns use other lower-case tokens such as "try",
	// "confirm" and "cancel".
	Op dtx.Op
}

// maxGIDLen bounds the gid a participant accepts.
const maxGIDLen = 256

// BranchFromRequest reads the branch identity from the request headers. It
// returns an error naming the header if one is missing or malformed.
func BranchFromRequest(r *http.Request) (Branch, error) {
	return BranchFromHeaders(r.Header.Get)
}

// BranchFromHeaders reads the branch identity through get, which returns a
// header's value ("" when absent): HTTP request headers, or the headers of
// a command message (package transport/brokertransport). Its errors are
// BranchFromRequest's.
func BranchFromHeaders(get func(name string) string) (Branch, error) {
	gid := get(dtx.HeaderGID)
	idx := get(dtx.HeaderBranch)
	op := get(dtx.HeaderOp)
	br := Branch{GID: gid, Op: dtx.Op(op)}
	if gid == "" {
		return Branch{}, fmt.Errorf("participant: missing header %s", dtx.HeaderGID)
	}
	if idx == "" {
		return Branch{}, fmt.Errorf("participant: missing header %s", dtx.HeaderBranch)
	}
	if op == "" {
		return Branch{}, fmt.Errorf("participant: missing header %s", dtx.HeaderOp)
	}
	n, err := strconv.ParseInt(idx, 10, 32)
	if err != nil || strings.TrimLeft(idx, "0123456789") != "" { // digits only: no sign, not even "-0"
		return Branch{}, fmt.Errorf("participant: malformed header %s: %q is not a branch index", dtx.HeaderBranch, idx)
	}
	br.Index = int(n)
	if err := br.validate(); err != nil {
		return Branch{}, err
	}
	return br, nil
}

// validate checks the fields of a Branch, naming the offending header.
func (br Branch) validate() error {
	switch {
	case br.GID == "":
		return fmt.Errorf("participant: empty gid (header %s)", dtx.HeaderGID)
	case len(br.GID) > maxGIDLen:
		return fmt.Errorf("participant: gid longer than %d bytes (header %s)", maxGIDLen, dtx.HeaderGID)
	case br.Index < 0 || br.Index > math.MaxInt32:
		return fmt.Errorf("participant: branch index %d out of range (header %s)", br.Index, dtx.HeaderBranch)
	case !validOp(br.Op):
		return fmt.Errorf("participant: malformed op %q (header %s): want a lower-case word such as %q or %q",
			br.Op, dtx.HeaderOp, dtx.OpAction, dtx.OpCompensate)
	}
	return nil
}

func validOp(op dtx.Op) bool {
	if op == "" || len(op) > 32 {
		return false
	}
	for i := 0; i < len(op); i++ {
		if op[i] < 'a' || op[i] > 'z' {
			return false
		}
	}
	return true
}
