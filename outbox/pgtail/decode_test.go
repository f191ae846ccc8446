package pgtail

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/jackc/pglogrepl"
)

func textCol(b []byte) *pglogrepl.TupleDataColumn {
	return &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeText, Length: uint32(len(b)), Data: b}
}

// FuzzDecodeRow feeds decodeRow tuples as pgoutput sends them: it never
// panics, and what it accepts comes back unchanged.
func FuzzDecodeRow(f *testing.F) {
	f.Add("1", "m-1", "orders", "k", []byte(`{"a":"b"}`), []byte("payload"), false)
	f.Add("42", "", "", "", []byte(`{}`), []byte{}, false)
	f.Add("x", "id", "t", "", []byte(`not json`), []byte{0, 1, 2}, true)
	f.Fuzz(func(t *testing.T, seq, id, topic, key string, headers, payload []byte, rawPayload bool) {
		enc := []byte(`\x` + hex.EncodeToString(payload))
		if rawPayload {
			enc = payload // not in hex format: must be refused, not misread
		}
		tup := &pglogrepl.TupleData{Columns: []*pglogrepl.TupleDataColumn{
			textCol([]byte(seq)), textCol([]byte(id)), textCol([]byte(topic)), textCol([]byte(key)), textCol(headers), textCol(enc),
		}}
		rw, err := decodeRow(columns{seq: 0, id: 1, topic: 2, key: 3, headers: 4, payload: 5}, tup)
		if err != nil {
			return
		}
		if rw.msg.ID != id || rw.msg.Topic != topic || rw.msg.Key != key {
			t.Fatalf("fields changed: %+v", rw.msg)
		}
		if !rawPayload && !bytes.Equal(rw.msg.Payload, payload) {
			t.Fatalf("payload %x, want %x", rw.msg.Payload, payload)
		}
		if len(payload) == 0 && rw.msg.Payload != nil {
			t.Fatal("an empty payload decodes to nil, as with the polling relay")
		}
		// A short tuple is an error, not a panic.
		if _, err := decodeRow(columns{seq: 0, id: 1, topic: 2, key: 3, headers: 4, payload: 9}, tup); err == nil {
			t.Fatal("a missing column was accepted")
		}
	})
}
