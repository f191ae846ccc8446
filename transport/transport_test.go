package transport_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/transport"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// named answers every call with its name as body, and refuses URLs that
// contain "bad" when it checks URLs.
type named struct {
	name  string
	calls []string
}

func (n *named) Call(_ context.Context, c dtx.Call) dtx.Outcome {
	n.calls = append(n.calls, c.URL)
	return dtx.Succeeded([]byte(n.name))
}

type checking struct{ named }

func (c *checking) CheckURL(raw string) error {
	if strings.Contains(raw, "bad") {
		return errors.New("bad URL for " + c.name)
	}
	return nil
}

func TestSchemes_Call(t *testing.T) {
	h, b := &named{name: "http"}, &named{name: "broker"}
	tr := transport.Schemes{"http": h, "https": h, "broker": b}
	for url, want := range map[string]string{
		"http://svc/a":   "http",
		"https://svc/a":  "http",
		"HTTP://svc/a":   "http",
		"broker://topic": "broker",
	} {
		out := tr.Call(context.Background(), dtx.Call{URL: url})
		require.Equal(t, dtx.Success, out.Class, url)
		require.Equal(t, want, string(out.Body), url)
	}
	require.Len(t, h.calls, 3)
	require.Equal(t, []string{"broker://topic"}, b.calls)

	// Nothing serves these: unknown, never a failure or a success.
	for _, url := range []string{"ftp://svc/a", "/relative", "no-scheme", ""} {
		out := tr.Call(context.Background(), dtx.Call{URL: url})
		require.Equal(t, dtx.Unknown, out.Class, url)
	}
	out := tr.Call(context.Background(), dtx.Call{URL: "ftp://svc/a"})
	require.ErrorContains(t, out.Err, `no transport for the scheme "ftp"`)
	require.ErrorContains(t, out.Err, "served: broker, http, https")
}

func TestSchemes_CheckURL(t *testing.T) {
	tr := transport.Schemes{
		"http":   httptransport.New(nil),
		"broker": &checking{named{name: "broker"}},
		"plain":  &named{name: "plain"}, // no rule of its own
	}
	for _, ok := range []string{"http://svc/a", "broker://good", "plain:anything", "PLAIN:x"} {
		require.NoError(t, tr.CheckURL(ok), ok)
	}
	for url, want := range map[string]string{
		"broker://bad":   "bad URL for broker",
		"http:///a":      "has no host",
		"https://svc/a":  `no transport for the scheme "https"`,
		"mailto:ops@x.y": `no transport for the scheme "mailto"`,
		"/relative":      "has no scheme",
		"1http://svc/a":  "has no scheme",
	} {
		require.ErrorContains(t, tr.CheckURL(url), want, url)
	}
}
