package brokertransport

import (
	"fmt"
	"regexp"
	"strings"
)

// The command protocol: the coordinator (Transport.Call) publishes a
// command message to the topic named by a step URL "broker://<topic>", and
// the participant (Serve, CommandHandler) publishes its reply to the topic
// named in the command's HeaderReplyTo. Both sides use the header names
// below, with broker.HeaderCorrelationID, broker.HeaderCausationID and
// broker.HeaderType; the command also carries dtx's Dtx-Gid, Dtx-Branch,
// Dtx-Op and Dtx-Attempt headers, like an HTTP branch call.
const (
	// URLScheme is the scheme of a step URL that names a broker topic.
	URLScheme = "broker"
	// HeaderReplyTo names the topic a command's reply is published to.
	HeaderReplyTo = "Dtx-Reply-To"
	// HeaderStatus carries a reply's status, an HTTP status code in
	// decimal, classified like an HTTP answer (2xx success, most 4xx a
	// definite failure, anything else unknown).
	HeaderStatus = "Dtx-Status"
	// HeaderDeadline carries the time (RFC 3339, UTC) after which the
	// caller no longer waits for a command's reply: a participant skips a
	// command it receives later (the caller has already retried it as a new
	// command), so a backlog of stale commands drains without running
	// them. This compares the caller's clock with the participant's, which
	// must agree to well within the call's timeout.
	HeaderDeadline = "Dtx-Deadline"
	// TypeCommand and TypeReply are the broker.HeaderType of commands and
	// replies.
	TypeCommand = "dtx.command"
	TypeReply   = "dtx.reply"
)

// topicRE is what a broker:// URL may name: lower-case letters, digits and
// dashes, which every adapter takes as a topic unchanged.
var topicRE = regexp.MustCompile(`^[a-z0-9-]{1,200}$`)

// URL returns the step URL "broker://<topic>".
func URL(topic string) string { return URLScheme + "://" + topic }

// ParseURL returns the topic of a step URL "broker://<topic>". The topic is
// 1 to 200 characters out of a-z, 0-9 and '-'; nothing may follow it (no
// path, query, fragment, port or user).
func ParseURL(raw string) (string, error) {
	rest, ok := strings.CutPrefix(raw, URLScheme+"://")
	if !ok {
		return "", fmt.Errorf("URL %q is not %s://<topic>", raw, URLScheme)
	}
	if err := CheckTopic(rest); err != nil {
		return "", fmt.Errorf("URL %q: %w", raw, err)
	}
	return rest, nil
}

// CheckTopic accepts the topics of commands and replies: 1 to 200
// characters out of a-z, 0-9 and '-'.
func CheckTopic(topic string) error {
	if !topicRE.MatchString(topic) {
		return fmt.Errorf("the topic must be 1-200 characters out of a-z, 0-9 and '-', not %q", topic)
	}
	return nil
}
