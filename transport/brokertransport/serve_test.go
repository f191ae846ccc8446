package brokertransport_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/transport/brokertransport"
)

// TestServe_Replies publishes raw commands and checks the replies a
// participant publishes: headers echoed, status and body as over HTTP,
// commands without branch headers refused with 400, commands without a
// reply topic or past their deadline dropped.
func TestServe_Replies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := natsbroker.OpenEmbedded(ctx, t.TempDir(), natsbroker.Config{})
	require.NoError(t, err)
	defer b.Close()

	var runs atomic.Int64
	sub, err := brokertransport.Serve(ctx, b, "svc-op", "svc", func(_ context.Context, br participant.Branch, body []byte) (any, error) {
		runs.Add(1)
		if br.GID == "refuse" {
			return nil, dtx.Permanentf("no stock for %s", body)
		}
		return map[string]any{"gid": br.GID, "branch": br.Index, "op": br.Op}, nil
	})
	require.NoError(t, err)
	defer sub.Close()
	replies := make(chan broker.Delivery, 8)
	rsub, err := b.Subscribe(ctx, "replies-here", "test", func(_ context.Context, d broker.Delivery) error {
		replies <- d
		return nil
	})
	require.NoError(t, err)
	defer rsub.Close()

	command := func(id string, headers map[string]string, payload string) broker.Message {
		h := map[string]string{brokertransport.HeaderReplyTo: "replies-here", broker.HeaderCorrelationID: "corr-" + id}
		for k, v := range headers {
			h[k] = v
		}
		return broker.Message{ID: id, Topic: "svc-op", Key: id, Headers: h, Payload: []byte(payload)}
	}
	branch := func(gid string) map[string]string {
		return map[string]string{dtx.HeaderGID: gid, dtx.HeaderBranch: "4", dtx.HeaderOp: "compensate", dtx.HeaderAttempt: "2"}
	}
	next := func() broker.Delivery {
		select {
		case d := <-replies:
			return d
		case <-time.After(20 * time.Second):
			t.Fatal("no reply")
			return broker.Delivery{}
		}
	}

	require.NoError(t, b.Publish(ctx, command("c1", branch("order-1"), `{}`)))
	r := next()
	require.Equal(t, "200", r.Headers[brokertransport.HeaderStatus])
	require.Equal(t, "c1", r.Headers[broker.HeaderCausationID])
	require.Equal(t, "corr-c1", r.Headers[broker.HeaderCorrelationID])
	require.Equal(t, brokertransport.TypeReply, r.Headers[broker.HeaderType])
	require.Equal(t, "order-1", r.Headers[dtx.HeaderGID])
	require.Equal(t, "compensate", r.Headers[dtx.HeaderOp])
	require.Equal(t, "c1", r.Key)
	require.Equal(t, "c1/reply/1", r.ID)
	require.JSONEq(t, `{"gid":"order-1","branch":4,"op":"compensate"}`, string(r.Payload))

	require.NoError(t, b.Publish(ctx, command("c2", branch("refuse"), `"sku-9"`)))
	r = next()
	require.Equal(t, "409", r.Headers[brokertransport.HeaderStatus])
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	require.NoError(t, json.Unmarshal(r.Payload, &p))
	require.Equal(t, 409, p.Status)
	require.Equal(t, `no stock for "sku-9"`, p.Detail)

	// No Dtx-Op: refused without running the handler.
	h := branch("order-3")
	delete(h, dtx.HeaderOp)
	require.NoError(t, b.Publish(ctx, command("c3", h, `{}`)))
	r = next()
	require.Equal(t, "400", r.Headers[brokertransport.HeaderStatus])
	require.Contains(t, string(r.Payload), "missing header Dtx-Op")

	// No reply topic: handled by nobody, answered to nobody; the next
	// command on the same key is not held back by it.
	noReply := command("c5", branch("order-5"), `{}`)
	noReply.Key = "same"
	delete(noReply.Headers, brokertransport.HeaderReplyTo)
	after := command("c6", branch("order-6"), `{}`)
	after.Key = "same"
	require.NoError(t, b.Publish(ctx, noReply, after))
	r = next()
	require.Equal(t, "c6", r.Headers[broker.HeaderCausationID])
	require.Equal(t, "200", r.Headers[brokertransport.HeaderStatus])
	require.Equal(t, int64(3), runs.Load(), "only well-formed commands with a reply topic ran")

	// A command received after its deadline is skipped: no run, no reply.
	stale := command("c7", branch("order-7"), `{}`)
	stale.Key = "k"
	stale.Headers[brokertransport.HeaderDeadline] = time.Now().Add(-time.Millisecond).UTC().Format(time.RFC3339Nano)
	fresh := command("c8", branch("order-8"), `{}`)
	fresh.Key = "k"
	fresh.Headers[brokertransport.HeaderDeadline] = time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)
	require.NoError(t, b.Publish(ctx, stale, fresh))
	r = next()
	require.Equal(t, "c8", r.Headers[broker.HeaderCausationID])
	require.Equal(t, int64(4), runs.Load(), "the expired command did not run")
	select {
	case r := <-replies:
		t.Fatalf("unexpected reply to %s", r.Headers[broker.HeaderCausationID])
	case <-time.After(200 * time.Millisecond):
	}
}

func TestServe_RejectsBadTopic(t *testing.T) {
	_, err := brokertransport.Serve(context.Background(), nil, "Bad.Topic", "g", nil)
	require.ErrorContains(t, err, "the topic must be")
}
