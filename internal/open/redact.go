package open

import "strings"

// redacted replaces a secret in a shown DSN.
const redacted = "xxxxx"

// RedactDSN returns dsn with its secrets replaced by "xxxxx", for logs,
// errors and reports: the password of the user-info part
// (scheme://user:password@host, also go-sql-driver's
// mysql://user:password@tcp(host)/db, where the password may itself hold
// '@' or ':'), and the value of every query parameter whose name contains
// "pass" (password=, sslpassword=, passfile= …) or is "secret" or "token".
// The user name, host and database stay visible.
func RedactDSN(dsn string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		scheme, rest = "", dsn
	}
	main, query, hasQuery := strings.Cut(rest, "?")
	if at := strings.LastIndex(main, "@"); at >= 0 {
		if user, _, hasPass := strings.Cut(main[:at], ":"); hasPass {
			main = user + ":" + redacted + main[at:]
		}
	}
	out := main
	if ok {
		out = scheme + "://" + main
	}
	if !hasQuery {
		return out
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		k, _, hasValue := strings.Cut(p, "=")
		if hasValue && secretParam(k) {
			params[i] = k + "=" + redacted
		}
	}
	return out + "?" + strings.Join(params, "&")
}

func secretParam(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "pass") || strings.Contains(k, "pwd") || k == "secret" || k == "token"
}
