package xa

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/participant"
)

// Prefixes of the two XID forms.
const (
	plainPrefix = "dtx:"
	hashPrefix  = "dtx#"
	maxXIDLen   = 64
)

// XID returns the transaction identifier of branch br: "dtx:<gid>:<branch>"
// if that is at most 64 bytes and the gid holds only printable ASCII other
// than quotes and backslash, else "dtx#" followed by 48 hex digits of a
// SHA-256 of the gid and branch. Either form can be quoted in SQL as is. The
// Op of br is ignored.
func XID(br participant.Branch) string {
	idx := strconv.Itoa(br.Index)
	if plainGID(br.GID) && len(plainPrefix)+len(br.GID)+1+len(idx) <= maxXIDLen {
		return plainPrefix + br.GID + ":" + idx
	}
	h := sha256.New()
	h.Write([]byte(br.GID))
	h.Write([]byte{0})
	h.Write([]byte(idx))
	return hashPrefix + hex.EncodeToString(h.Sum(nil))[:48]
}

func plainGID(gid string) bool {
	if gid == "" {
		return false
	}
	for i := 0; i < len(gid); i++ {
		c := gid[i]
		if c < 0x21 || c > 0x7e || c == '\'' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// parsePlain inverts the plain form of XID.
func parsePlain(xid string) (participant.Branch, bool) {
	if !strings.HasPrefix(xid, plainPrefix) {
		return participant.Branch{}, false
	}
	rest := xid[len(plainPrefix):]
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return participant.Branch{}, false
	}
	n, err := strconv.ParseInt(rest[i+1:], 10, 32)
	if err != nil || n < 0 {
		return participant.Branch{}, false
	}
	br := participant.Branch{GID: rest[:i], Index: int(n), Op: dtx.OpTry}
	if XID(br) != xid { // not canonical: not one of ours
		return participant.Branch{}, false
	}
	return br, true
}

var hashRE = regexp.MustCompile(`^dtx#[0-9a-f]{48}$`)
