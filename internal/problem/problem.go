// Package problem writes RFC 9457 problem details (application/problem+json).
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

// Write sends a problem response of type about:blank.
func Write(w http.ResponseWriter, status int, detail string) {
	WriteType(w, status, "about:blank", detail)
}

// WriteType sends a problem response of the given type.
func WriteType(w http.ResponseWriter, status int, typ, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(Details{Type: typ, Title: http.StatusText(status), Status: status, Detail: detail})
}
