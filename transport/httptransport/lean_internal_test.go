package httptransport

import "testing"

func TestHostHeader(t *testing.T) {
	for in, want := range map[string]string{
		"example.com:8080":  "example.com:8080",
		"127.0.0.1":         "127.0.0.1",
		"[::1]:80":          "[::1]:80",
		"[fe80::1%eth0]:80": "[fe80::1]:80",
		"[fe80::1%25eth0]":  "[fe80::1]",
		"[fe80::1%eth0":     "[fe80::1%eth0",
		"host%zone:1":       "host%zone:1",
	} {
		if got := hostHeader(in); got != want {
			t.Errorf("hostHeader(%q) = %q, want %q", in, got, want)
		}
	}
}
