package pgtail

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jackc/pglogrepl"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
)

// row is one outbox row as the relay publishes it.
type row struct {
	seq int64
	msg broker.Message
}

// columns maps the outbox columns the relay reads to their positions in a
// relation's tuples.
type columns struct {
	seq, id, topic, key, headers, payload int
}

// outboxColumns returns the positions of the outbox columns in rel, and
// whether rel is the outbox table t at all.
func outboxColumns(rel *pglogrepl.RelationMessage, t appdb.Table) (columns, bool, error) {
	if rel.RelationName != lower(t.Name) || (t.Schema != "" && rel.Namespace != lower(t.Schema)) {
		return columns{}, false, nil
	}
	c := columns{-1, -1, -1, -1, -1, -1}
	for i, col := range rel.Columns {
		switch col.Name {
		case "seq":
			c.seq = i
		case "msg_id":
			c.id = i
		case "topic":
			c.topic = i
		case "msg_key":
			c.key = i
		case "headers":
			c.headers = i
		case "payload":
			c.payload = i
		}
	}
	for _, i := range []int{c.seq, c.id, c.topic, c.key, c.headers, c.payload} {
		if i < 0 {
			return columns{}, true, fmt.Errorf("pgtail: relation %s.%s lacks an outbox column", rel.Namespace, rel.RelationName)
		}
	}
	return c, true, nil
}

// decodeRow turns the tuple of an inserted outbox row (text format) into
// a row.
func decodeRow(c columns, tup *pglogrepl.TupleData) (row, error) {
	text := func(i int) ([]byte, error) {
		if tup == nil || i >= len(tup.Columns) {
			return nil, fmt.Errorf("pgtail: short tuple")
		}
		col := tup.Columns[i]
		switch col.DataType {
		case pglogrepl.TupleDataTypeText:
			return col.Data, nil
		case pglogrepl.TupleDataTypeNull:
			return nil, nil
		default:
			return nil, fmt.Errorf("pgtail: column %d: unexpected tuple data type %q", i, col.DataType)
		}
	}
	var (
		rw  row
		err error
		b   []byte
	)
	if b, err = text(c.seq); err != nil {
		return row{}, err
	}
	if rw.seq, err = strconv.ParseInt(string(b), 10, 64); err != nil {
		return row{}, fmt.Errorf("pgtail: seq %q: %w", b, err)
	}
	for _, f := range []struct {
		i   int
		dst *string
	}{{c.id, &rw.msg.ID}, {c.topic, &rw.msg.Topic}, {c.key, &rw.msg.Key}} {
		if b, err = text(f.i); err != nil {
			return row{}, fmt.Errorf("pgtail: row %d: %w", rw.seq, err)
		}
		*f.dst = string(b)
	}
	if b, err = text(c.headers); err != nil {
		return row{}, fmt.Errorf("pgtail: row %d: %w", rw.seq, err)
	}
	if len(b) > 0 && string(b) != "{}" {
		if err := json.Unmarshal(b, &rw.msg.Headers); err != nil {
			return row{}, fmt.Errorf("pgtail: headers of row %d: %w", rw.seq, err)
		}
	}
	if b, err = text(c.payload); err != nil {
		return row{}, fmt.Errorf("pgtail: row %d: %w", rw.seq, err)
	}
	if rw.msg.Payload, err = decodeBytea(b); err != nil {
		return row{}, fmt.Errorf("pgtail: payload of row %d: %w", rw.seq, err)
	}
	return rw, nil
}

// decodeBytea decodes a bytea in PostgreSQL's hex text format ("\x0a1b");
// an empty value gives nil, as the polling relay does.
func decodeBytea(b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != '\\' || b[1] != 'x' {
		return nil, fmt.Errorf("not in hex format (bytea_output must be hex)")
	}
	if len(b) == 2 {
		return nil, nil
	}
	out := make([]byte, hex.DecodedLen(len(b)-2))
	if _, err := hex.Decode(out, b[2:]); err != nil {
		return nil, err
	}
	return out, nil
}
