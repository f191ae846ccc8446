// Package problem writes the JSON answers of dtx's HTTP faces (the
// coordinator API, the flows API, the participant helpers and the shop):
// RFC 9457 problem details (application/problem+json) for errors, and plain
// JSON for results. It is the one place these bodies and their headers are
// written.
package problem

import (
	"encoding/json"
	"net/http"
)

// Details is an RFC 9457 problem body.
type Details struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// TypeTransactionNotFound is the problem type of a 404 for a gid the
// coordinator does not know. Clients must not take any other 404 (an
// unknown route, a proxy, another service on the port) for it: a
// participant that presumes abort from "not found" would roll back a live
// transaction.
const TypeTransactionNotFound = "urn:dtx:problem:transaction-not-found"

// TypeUnauthorized is the problem type of a 401 for an admin action without
// the right bearer token.
const TypeUnauthorized = "urn:dtx:problem:unauthorized"

// TypeAdminDisabled is the problem type of a 403 for an admin action on a
// coordinator that has no admin token configured (read-only API).
const TypeAdminDisabled = "urn:dtx:problem:admin-disabled"

// TypeCrossSite is the problem type of a 403 for a state-changing request
// that a browser sent from another site (Sec-Fetch-Site or Origin).
const TypeCrossSite = "urn:dtx:problem:cross-site"

// TypeHostNotAllowed is the problem type of a 421 for a request whose Host
// header names neither an IP address, localhost, nor a name the server was
// configured with (a DNS rebinding attempt, or a misconfigured proxy).
const TypeHostNotAllowed = "urn:dtx:problem:host-not-allowed"

// TypeTooBusy is the problem type of a 503 refused because a connection
// limit (event streams, waiting submissions) is reached; the response
// carries Retry-After.
const TypeTooBusy = "urn:dtx:problem:too-busy"

// Write sends a problem response of type about:blank.
func Write(w http.ResponseWriter, status int, detail string) {
	WriteType(w, status, "about:blank", detail)
}

// WriteType sends a problem response of the given type.
func WriteType(w http.ResponseWriter, status int, typ, detail string) {
	body, _ := json.Marshal(Details{Type: typ, Title: http.StatusText(status), Status: status, Detail: detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// WriteJSON answers with status and v encoded as JSON. If v cannot be
// encoded it answers 500 with a problem body instead, so a half-written
// body never goes out with a success status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		Write(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
