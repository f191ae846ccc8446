package brokertransport_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/transport/brokertransport"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// validTopic is the documented topic rule, written out byte by byte.
func validTopic(s string) bool {
	if len(s) < 1 || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// FuzzParseURL checks ParseURL and CheckTopic against the documented rule
// (1-200 of a-z, 0-9, '-'; nothing after the topic), and that URL and
// ParseURL round-trip.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"broker://payments", "broker://a-b-9", "broker://Pay", "broker://", "broker://a/b",
		"broker://a?x", "broker://a:1", "broker://u@a", "broker://" + strings.Repeat("a", 201), "http://x/y", "broker:/a", "broker://a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		topic, err := brokertransport.ParseURL(raw)
		rest, isBroker := strings.CutPrefix(raw, "broker://")
		if want := isBroker && validTopic(rest); (err == nil) != want {
			t.Fatalf("ParseURL(%q) = %q, %v; the rule says ok=%v", raw, topic, err, want)
		}
		if (brokertransport.CheckTopic(rest) == nil) != validTopic(rest) {
			t.Fatalf("CheckTopic(%q) disagrees with the rule", rest)
		}
		if err != nil {
			return
		}
		if topic != rest || brokertransport.URL(topic) != raw {
			t.Fatalf("ParseURL(%q) = %q, which formats as %q", raw, topic, brokertransport.URL(topic))
		}
		if u, err := url.Parse(raw); err != nil || u.Scheme != brokertransport.URLScheme || u.Host != topic || u.Path != "" || u.RawQuery != "" {
			t.Fatalf("accepted %q does not parse as a URL with host %q: %+v, %v", raw, topic, u, err)
		}
	})
}

// FuzzReplyTopicFor checks that every owner name gets a valid reply topic,
// and that a clean short owner keeps its name.
func FuzzReplyTopicFor(f *testing.F) {
	for _, s := range []string{"coordinator-1", "Host.Example:8080", "", "é", strings.Repeat("x", 65), "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, owner string) {
		topic := brokertransport.ReplyTopicFor(owner)
		if err := brokertransport.CheckTopic(topic); err != nil {
			t.Fatalf("ReplyTopicFor(%q) = %q: %v", owner, topic, err)
		}
		if !strings.HasPrefix(topic, brokertransport.ReplyTopicPrefix) {
			t.Fatalf("ReplyTopicFor(%q) = %q lacks the prefix", owner, topic)
		}
		if validTopic(owner) && len(owner) <= 64 && topic != brokertransport.ReplyTopicPrefix+owner {
			t.Fatalf("ReplyTopicFor(%q) = %q, want the owner unchanged", owner, topic)
		}
	})
}

// fuzzBroker is an in-memory broker.Broker for the fuzz targets: it keeps
// the handler of each subscribed topic and the published messages, and
// answers a command (TypeCommand) at once with reply, if set.
type fuzzBroker struct {
	subs      map[string]broker.Handler
	published []broker.Message
	reply     func(cmd broker.Message) broker.Delivery
}

func (b *fuzzBroker) Publish(ctx context.Context, msgs ...broker.Message) error {
	for _, m := range msgs {
		b.published = append(b.published, m)
		if m.Headers[broker.HeaderType] == brokertransport.TypeCommand && b.reply != nil {
			d := b.reply(m)
			if h := b.subs[d.Topic]; h != nil {
				if err := h(ctx, d); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (b *fuzzBroker) Subscribe(_ context.Context, topic, _ string, h broker.Handler) (broker.Subscription, error) {
	b.subs[topic] = h
	return fuzzSub{}, nil
}

func (b *fuzzBroker) Close() error { return nil }

type fuzzSub struct{}

func (fuzzSub) Close() error { return nil }

// FuzzReply checks how a caller reads a reply's status header and body:
// a status that is not a 3-digit number is an Unknown outcome; otherwise
// the outcome is the HTTP class of the code, a success carries the body,
// and a failure's error carries the code and httptransport.Detail of the
// body. The outcome's reason is valid UTF-8.
func FuzzReply(f *testing.F) {
	for _, s := range []struct {
		status string
		body   string
	}{
		{"200", `{"ok":true}`}, {"409", `{"title":"Conflict","detail":"no stock"}`}, {"503", "down"},
		{"", ""}, {"99", ""}, {"1000", ""}, {"+200", ""}, {" 200", ""}, {"4O4", ""}, {"404", "\xff\x00"},
	} {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status string, body []byte) {
		b := &fuzzBroker{subs: map[string]broker.Handler{}}
		tr, err := brokertransport.New(context.Background(), b, brokertransport.Config{Owner: "fuzz"})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		b.reply = func(cmd broker.Message) broker.Delivery {
			return broker.Delivery{Attempt: 1, Message: broker.Message{
				ID: cmd.ID + "/reply", Topic: cmd.Headers[brokertransport.HeaderReplyTo],
				Headers: map[string]string{brokertransport.HeaderStatus: status, broker.HeaderCausationID: cmd.ID},
				Payload: body,
			}}
		}
		o := tr.Call(context.Background(), dtx.Call{GID: "g", Branch: 0, Op: dtx.OpAction, URL: "broker://svc", Attempt: 1, Timeout: time.Minute})
		if !utf8.ValidString(o.Reason()) {
			t.Fatalf("reason %q is not valid UTF-8", o.Reason())
		}
		code, err := strconv.Atoi(status)
		if err != nil || code < 100 || code > 999 {
			if o.Class != dtx.Unknown {
				t.Fatalf("status %q: outcome %v, want unknown", status, o.Class)
			}
			return
		}
		if want := httptransport.Classify(code); o.Class != want {
			t.Fatalf("status %q: outcome %v, want %v", status, o.Class, want)
		}
		if o.Class == dtx.Success {
			if string(o.Body) != string(body) {
				t.Fatalf("status %q: body %q, want %q", status, o.Body, body)
			}
			return
		}
		var se *httptransport.StatusError
		if !errors.As(o.Err, &se) || se.Code != code || se.Detail != httptransport.Detail(body) {
			t.Fatalf("status %q body %q: error %v, want a StatusError with code %d and detail %q", status, body, o.Err, code, httptransport.Detail(body))
		}
	})
}

// FuzzCommandHandler feeds CommandHandler commands with arbitrary headers
// and payloads. A command without a valid reply topic, or past its
// deadline, is acknowledged without a reply; any other gets exactly one
// reply on its reply topic, whose status is 400 exactly when the branch
// headers do not parse (participant.BranchFromHeaders), whose body is JSON,
// and which, for 200, carries the handler's result for the very branch the
// headers name.
func FuzzCommandHandler(f *testing.F) {
	f.Add("order-1", "0", "action", "dtx-replies-c1", "", []byte(`{"n":1}`))
	f.Add("order-1", "2", "try", "dtx-replies-c1", "2999-01-01T00:00:00Z", []byte(`{}`))
	f.Add("order-1", "2", "try", "dtx-replies-c1", "2000-01-01T00:00:00Z", []byte(`{}`))
	f.Add("order-1", "-1", "try", "dtx-replies-c1", "not a time", []byte(`{}`))
	f.Add("", "1", "cancel", "dtx-replies-c1", "", []byte(nil))
	f.Add("g", "+1", "CONFIRM", "r", "", []byte("x"))
	f.Add("g", "1", "confirm", "Bad Topic", "", []byte("x"))
	f.Add("g\x00h", "007", "action", "r", "", []byte("x"))
	f.Fuzz(func(t *testing.T, gid, branch, op, replyTo, deadline string, payload []byte) {
		headers := map[string]string{
			dtx.HeaderGID: gid, dtx.HeaderBranch: branch, dtx.HeaderOp: op,
			brokertransport.HeaderReplyTo: replyTo, brokertransport.HeaderDeadline: deadline,
			broker.HeaderType: brokertransport.TypeCommand,
		}
		for k, v := range headers {
			if v == "" {
				delete(headers, k)
			}
		}
		d := broker.Delivery{Attempt: 1, Message: broker.Message{ID: "cmd-1", Topic: "svc", Key: gid, Headers: headers, Payload: payload}}
		type echo struct {
			GID   string `json:"gid"`
			Index int    `json:"index"`
			Op    dtx.Op `json:"op"`
		}
		b := &fuzzBroker{subs: map[string]broker.Handler{}}
		h := brokertransport.CommandHandler(b, func(_ context.Context, br participant.Branch, body []byte) (any, error) {
			return echo{br.GID, br.Index, br.Op}, nil
		})
		expiredBefore := brokertransport.CommandExpired(d)
		if err := h(context.Background(), d); err != nil {
			t.Fatalf("handler: %v", err)
		}
		dl, derr := time.Parse(time.RFC3339Nano, deadline)
		if expiredBefore != (deadline != "" && derr == nil && time.Now().After(dl)) {
			t.Fatalf("CommandExpired with deadline %q = %v", deadline, expiredBefore)
		}
		if !validTopic(replyTo) || expiredBefore {
			if len(b.published) != 0 {
				t.Fatalf("reply-to %q, expired %v: published %+v, want nothing", replyTo, expiredBefore, b.published)
			}
			return
		}
		if len(b.published) != 1 {
			t.Fatalf("published %d messages, want one reply", len(b.published))
		}
		r := b.published[0]
		if r.Topic != replyTo || r.Headers[broker.HeaderType] != brokertransport.TypeReply || r.Headers[broker.HeaderCausationID] != d.ID {
			t.Fatalf("reply %+v: want type %s to %q caused by %q", r, brokertransport.TypeReply, replyTo, d.ID)
		}
		if !json.Valid(r.Payload) {
			t.Fatalf("reply body %q is not JSON", r.Payload)
		}
		br, berr := participant.BranchFromHeaders(func(name string) string { return headers[name] })
		want := "200"
		if berr != nil || len(payload) > participant.MaxBodySize {
			want = "400"
		}
		if got := r.Headers[brokertransport.HeaderStatus]; got != want {
			t.Fatalf("reply status %q (body %s), want %s (branch headers: %v)", got, r.Payload, want, berr)
		}
		if want != "200" {
			return
		}
		if wantBody, _ := json.Marshal(echo{br.GID, br.Index, br.Op}); string(r.Payload) != string(wantBody) {
			t.Fatalf("reply body %s, want the result for %+v, %s", r.Payload, br, wantBody)
		}
		for _, name := range []string{dtx.HeaderGID, dtx.HeaderBranch, dtx.HeaderOp} {
			if r.Headers[name] != headers[name] {
				t.Fatalf("reply header %s = %q, want the command's %q", name, r.Headers[name], headers[name])
			}
		}
	})
}
