// Package termsafe makes text from elsewhere safe to print on an operator's
// terminal. A transaction's gid, step names, URLs and a participant's error
// text come from whoever submitted the transaction or answered its calls;
// printed raw, an escape sequence among them can clear the screen, rewrite
// earlier lines or retitle the window, and a bidirectional override can make
// a line read differently from what it holds. String shows such characters
// as escapes instead (\x1b, \n, \u202e), and Value does so for every
// string reachable in a decoded value before it is formatted.
package termsafe

import (
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// String returns s with every control character (C0, DEL and C1), every
// bidirectional formatting character and every invalid UTF-8 byte written
// as an escape; other text, including non-ASCII letters, is unchanged.
func String(s string) string {
	if safe(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case unsafe(r) && r < 0x100:
			b.WriteString(`\x`)
			b.WriteString(hex2(byte(r)))
		case unsafe(r):
			b.WriteString(`\u`)
			b.WriteString(hex2(byte(r >> 8)))
			b.WriteString(hex2(byte(r)))
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// safe reports whether String would return s unchanged (a valid U+FFFD
// only takes the slow path, which keeps it).
func safe(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || unsafe(r) {
			return false
		}
	}
	return true
}

// unsafe reports the characters a terminal acts on rather than shows.
func unsafe(r rune) bool {
	if unicode.IsControl(r) {
		return true
	}
	switch {
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true // bidirectional embeddings, overrides, isolates and marks
	}
	return false
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}

// Value applies String, in place, to every string that v (a pointer)
// reaches through exported struct fields, slices, arrays, maps and
// pointers, including strings of named types (such as a status) and map
// keys. Byte slices (raw JSON) are left alone: decode them and call Value
// on the result before printing.
func Value(v any) {
	walk(reflect.ValueOf(v))
}

func walk(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walk(v.Elem())
		}
	case reflect.String:
		if v.CanSet() {
			if s := String(v.String()); s != v.String() {
				v.SetString(s)
			}
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				walk(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := 0; i < v.Len(); i++ {
			walk(v.Index(i))
		}
	case reflect.Map:
		walkMap(v)
	}
}

// walkMap rebuilds the entries whose key or value changes (map elements
// are not addressable).
func walkMap(m reflect.Value) {
	if m.IsNil() {
		return
	}
	for _, k := range m.MapKeys() {
		nk := reflect.New(k.Type()).Elem()
		nk.Set(k)
		walk(nk)
		nv := reflect.New(m.Type().Elem()).Elem()
		nv.Set(m.MapIndex(k))
		walk(nv)
		if !nk.Equal(k) {
			m.SetMapIndex(k, reflect.Value{})
		}
		m.SetMapIndex(nk, nv)
	}
}
