// Package dashboard is the coordinator's web UI: a list of global
// transactions with filters and live updates, each transaction drawn as a
// sequence diagram, a view of the transactions that need attention, and the
// recorded flows of choreographed transactions, drawn the same way.
//
// The UI is plain HTML, CSS and JavaScript embedded in the binary: it loads
// nothing from elsewhere and works offline. It talks to the coordinator's
// HTTP API on the same origin (GET /v1/transactions, GET
// /v1/transactions/{gid}, GET /v1/events, the admin actions POST
// /v1/transactions/{gid}/retry and /abort, and GET /v1/flows[/{id}] where
// the server records flows), with paths relative to where it is mounted, so
// it can be served under any prefix ending in /ui/ next to /v1/.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Prefix is where package server mounts the dashboard.
const Prefix = "/ui/"

// Files returns the dashboard's files (index.html at the root).
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return sub
}

// Handler serves the dashboard under prefix (e.g. Prefix): prefix itself
// is index.html, and every file is sent with Cache-Control: no-cache, so a
// browser revalidates after an upgrade of the binary.
func Handler(prefix string) http.Handler {
	files := http.FileServerFS(Files())
	return http.StripPrefix(strings.TrimSuffix(prefix, "/"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		files.ServeHTTP(w, r)
	}))
}
