package httptransport_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/transport/httptransport"
)

func TestParseAllowlist_Refuses(t *testing.T) {
	for _, bad := range []string{"", "a,,b", "ftp://x/", "https://u:p@x/", "https://x/a/../b", "not a host", "x:99999", "-:-"} {
		_, err := httptransport.ParseAllowlist(bad)
		require.Error(t, err, bad)
	}
}

func TestAllowlist_Matches(t *testing.T) {
	a, err := httptransport.ParseAllowlist("127.0.0.1, 10.0.0.0/8, [::1]:9000, shop.internal:8080, *.pay.internal, https://pay.example/api/")
	require.NoError(t, err)
	tr := httptransport.New(nil, httptransport.WithAllowlist(a))
	for _, ok := range []string{
		"http://127.0.0.1/x", "http://127.0.0.1:1234/x", "http://10.1.2.3:80/x", "http://[::1]:9000/x",
		"http://shop.internal:8080/x", "http://SHOP.internal.:8080/x", "http://a.pay.internal/x", "https://b.c.pay.internal:8443/x",
		"https://pay.example/api/charge", "https://pay.example:443/api/", "https://pay.example/api",
	} {
		require.NoError(t, tr.CheckURL(ok), ok)
	}
	for _, bad := range []string{
		"http://127.0.0.2/x", "http://11.0.0.1/x", "http://[::1]:9001/x", "http://[::2]:9000/x",
		"http://shop.internal/x", "http://shop.internal:8081/x", "http://pay.internal/x", "http://evilpay.internal/x",
		"http://pay.example/api/charge", "https://pay.example:8443/api/x", "https://pay.example/apix",
		"https://pay.example/api/../admin", "https://pay.example/api/%2e%2e/admin", "https://pay.example/",
		"http://[::ffff:11.0.0.1]/x",
	} {
		err := tr.CheckURL(bad)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "not an allowed participant", bad)
	}
}

func TestAllowlist_LoopbackOnly(t *testing.T) {
	tr := httptransport.New(nil, httptransport.WithAllowlist(httptransport.LoopbackOnly()))
	for _, ok := range []string{"http://127.0.0.1:8081/x", "http://localhost:1/x", "http://[::1]/x", "http://[::ffff:127.0.0.1]/x"} {
		require.NoError(t, tr.CheckURL(ok), ok)
	}
	for _, bad := range []string{"http://10.1.2.3/x", "http://example.com/x", "http://169.254.169.254/latest"} {
		require.Error(t, tr.CheckURL(bad), bad)
	}
}

func TestCheckURL_RefusesCredentials(t *testing.T) {
	err := httptransport.New(nil).CheckURL("http://user:s3cret@127.0.0.1/x")
	require.ErrorContains(t, err, "credentials")
	require.NotContains(t, err.Error(), "s3cret")
}

func TestCheckURL_RefusesSelf(t *testing.T) {
	tr := httptransport.New(nil, httptransport.WithSelf("0.0.0.0:8480"))
	for _, bad := range []string{"http://127.0.0.1:8480/v1/transactions/x/abort", "http://localhost:8480/", "http://[::1]:8480/", "http://0.0.0.0:8480/", "http://127.9.9.9:8480/"} {
		require.ErrorContains(t, tr.CheckURL(bad), "coordinator itself", bad)
	}
	require.NoError(t, tr.CheckURL("http://127.0.0.1:8481/x"))
}

// A redirect is answered, not followed: the target is never called and the
// outcome is unknown (not a confirmation).
func TestCall_DoesNotFollowRedirects(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer target.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/admin", code)
		}))
		out := httptransport.New(nil).Call(context.Background(), dtx.Call{GID: "g", Op: dtx.OpAction, URL: redir.URL, Attempt: 1, Timeout: 5 * time.Second})
		redir.Close()
		require.Equal(t, dtx.Unknown, out.Class, "HTTP %d", code)
		require.ErrorContains(t, out.Err, "not followed")
	}
	require.Zero(t, hits.Load())
}

func TestCall_RefusedIsFailure(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	a, err := httptransport.ParseAllowlist("10.0.0.0/8")
	require.NoError(t, err)
	out := httptransport.New(nil, httptransport.WithAllowlist(a)).Call(context.Background(), dtx.Call{GID: "g", Op: dtx.OpAction, URL: srv.URL, Attempt: 1})
	require.Equal(t, dtx.Failure, out.Class)
	require.ErrorContains(t, out.Err, "not an allowed participant")

	// The coordinator's own port, reached by a stored URL.
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	out = httptransport.New(nil, httptransport.WithSelf("127.0.0.1:"+port)).Call(context.Background(), dtx.Call{GID: "g", Op: dtx.OpAction, URL: srv.URL, Attempt: 1})
	require.Equal(t, dtx.Failure, out.Class)
	require.ErrorContains(t, out.Err, "coordinator itself")
	require.Zero(t, hits.Load())
}

// A host name is checked on what it resolves to when dialled: an allowed
// name that resolves to a loopback address no IP rule allows (DNS
// rebinding), or to the coordinator itself, is refused; one that resolves
// to an allowed address is called.
func TestDial_ChecksResolvedAddresses(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	url := "http://shop.test:" + port + "/x"
	toLoopback := httptransport.WithLookup(func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	})
	call := func(tr *httptransport.Transport) dtx.Outcome {
		return tr.Call(context.Background(), dtx.Call{GID: "g", Op: dtx.OpAction, URL: url, Attempt: 1, Timeout: 5 * time.Second})
	}

	nameOnly, err := httptransport.ParseAllowlist("shop.test")
	require.NoError(t, err)
	tr := httptransport.New(nil, httptransport.WithAllowlist(nameOnly), toLoopback)
	require.NoError(t, tr.CheckURL(url))
	out := call(tr)
	require.Equal(t, dtx.Failure, out.Class)
	require.ErrorContains(t, out.Err, "resolves to 127.0.0.1")

	self := httptransport.New(nil, httptransport.WithSelf("0.0.0.0:"+port), toLoopback)
	out = call(self)
	require.Equal(t, dtx.Failure, out.Class)
	require.ErrorContains(t, out.Err, "coordinator itself")
	require.Zero(t, hits.Load())

	withIP, err := httptransport.ParseAllowlist("shop.test,127.0.0.1")
	require.NoError(t, err)
	out = call(httptransport.New(nil, httptransport.WithAllowlist(withIP), toLoopback))
	require.Equal(t, dtx.Success, out.Class, "err: %v", out.Err)
	require.EqualValues(t, 1, hits.Load())
	require.False(t, strings.Contains(url, "127"))
}
