package serve

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConns_Defaults(t *testing.T) {
	h := http.NotFoundHandler()
	srv := Conns{}.httpServer(h)
	require.Equal(t, DefaultReadHeaderTimeout, srv.ReadHeaderTimeout)
	require.Equal(t, DefaultReadTimeout, srv.ReadTimeout)
	require.Equal(t, DefaultIdleTimeout, srv.IdleTimeout)
	require.Equal(t, DefaultMaxHeaderBytes, srv.MaxHeaderBytes)
	require.Zero(t, srv.WriteTimeout, "the write deadline is per request (package server), not global")
	require.NotNil(t, srv.Handler)
}

func TestConns_Overrides(t *testing.T) {
	srv := Conns{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second, IdleTimeout: 3 * time.Second, MaxHeaderBytes: 4096}.httpServer(http.NotFoundHandler())
	require.Equal(t, time.Second, srv.ReadHeaderTimeout)
	require.Equal(t, 2*time.Second, srv.ReadTimeout)
	require.Equal(t, 3*time.Second, srv.IdleTimeout)
	require.Equal(t, 4096, srv.MaxHeaderBytes)
	require.Zero(t, srv.WriteTimeout)
}
