package httptransport_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dtxhq/dtx/transport/httptransport"
)

// FuzzDetail checks the explanation taken from a participant's error
// answer, which is stored with the branch and shown in logs, the CLI and
// the dashboard: it is valid UTF-8, at most MaxDetail bytes, without NUL;
// a short problem+json detail (else title) comes out unchanged, and a short
// plain-text body comes out trimmed.
func FuzzDetail(f *testing.F) {
	for _, s := range []string{
		`{"type":"about:blank","title":"Conflict","status":409,"detail":"insufficient stock for sku-42"}`,
		`{"title":"Bad Gateway"}`,
		`{"detail":"a\u0000b"}`,
		`{"detail":"` + strings.Repeat("é", 700) + `"}`,
		"bad gateway\n",
		"\xff\xfe not utf-8 \x00",
		strings.Repeat("x", 199) + "é",
		`["detail"]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := httptransport.Detail(body)
		if !utf8.ValidString(got) {
			t.Fatalf("Detail(%q) = %q: not valid UTF-8", body, got)
		}
		if len(got) > httptransport.MaxDetail {
			t.Fatalf("Detail(%q): %d bytes, more than MaxDetail (%d)", body, len(got), httptransport.MaxDetail)
		}
		if strings.Contains(got, "\x00") {
			t.Fatalf("Detail(%q) = %q contains NUL", body, got)
		}
		var p struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
		}
		short := func(s string) bool { return len(s) <= 200 && utf8.ValidString(s) && !strings.Contains(s, "\x00") }
		if json.Unmarshal(body, &p) == nil {
			switch {
			case p.Detail != "" && short(p.Detail) && got != p.Detail:
				t.Fatalf("Detail(%q) = %q, want the problem's detail %q", body, got, p.Detail)
			case p.Detail == "" && p.Title != "" && short(p.Title) && got != p.Title:
				t.Fatalf("Detail(%q) = %q, want the problem's title %q", body, got, p.Title)
			}
			if p.Detail != "" || p.Title != "" {
				return
			}
		}
		if text := string(bytes.TrimSpace(body)); short(text) && got != text {
			t.Fatalf("Detail(%q) = %q, want the trimmed text", body, got)
		}
	})
}

// FuzzCheckURL checks the rule applied to step URLs at submission: an
// accepted URL is http or https with a host, and a request to it can be
// built, so Call never meets a URL it cannot even try.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"http://svc.local/act", "https://x:8443/a?b=c#d", "HTTP://UPPER/x", "http:///nohost",
		"ftp://x/y", "http://[::1]:80/x", "http://a b/", "http://%zz/", "/relative", "broker://topic", ""} {
		f.Add(s)
	}
	tr := httptransport.New(nil)
	f.Fuzz(func(t *testing.T, raw string) {
		if tr.CheckURL(raw) != nil {
			return
		}
		req, err := http.NewRequest(http.MethodPost, raw, nil)
		if err != nil {
			t.Fatalf("CheckURL accepted %q, but no request can be built: %v", raw, err)
		}
		if (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
			t.Fatalf("CheckURL accepted %q: scheme %q host %q", raw, req.URL.Scheme, req.URL.Host)
		}
	})
}
