package saga_test

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"testing"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
)

// FuzzGIDHeaderSafe checks that a gid Normalize accepts can be sent as the
// Dtx-Gid header of a branch call unchanged: it is a valid HTTP field value
// (RFC 9110: visible ASCII, obs-text and inner spaces or tabs; no control
// character, no DEL) without leading or trailing whitespace a receiver
// would trim, and it reads back from the wire as the same string.
func FuzzGIDHeaderSafe(f *testing.F) {
	for _, gid := range []string{"order-1", "a\x00b", "a\x01b", "a\x7fb", "é-ü", "\xff", "a\vb", "x\u2028y", ""} {
		f.Add(gid)
	}
	f.Fuzz(func(t *testing.T, gid string) {
		s := saga.Spec{GID: gid, Steps: []saga.Step{{Action: "http://svc.local/act"}}}
		if s.Normalize() != nil || s.GID == "" {
			return
		}
		for i := 0; i < len(gid); i++ {
			if c := gid[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("Normalize accepted gid %q with control byte %#x at %d", gid, c, i)
			}
		}
		if gid[0] == ' ' || gid[len(gid)-1] == ' ' {
			t.Fatalf("Normalize accepted gid %q with leading or trailing space", gid)
		}
		var wire bytes.Buffer
		h := http.Header{}
		h.Set(dtx.HeaderGID, gid)
		if err := h.Write(&wire); err != nil {
			t.Fatal(err)
		}
		wire.WriteString("\r\n")
		got, err := textproto.NewReader(bufio.NewReader(&wire)).ReadMIMEHeader()
		if err != nil || got.Get(dtx.HeaderGID) != gid {
			t.Fatalf("gid %q reads back from the wire as %q (%v)", gid, got.Get(dtx.HeaderGID), err)
		}
	})
}
