package saga_test

import (
	"encoding/json"
	"fmt"
	"log"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
)

// A saga written in Go: each step an action and the compensation that
// undoes it, with the JSON body both receive.
func ExampleNew() {
	type reserve struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	}
	spec, err := saga.New("order-42").
		Step("reserve", "http://127.0.0.1:8081/reserve", "http://127.0.0.1:8081/release", saga.Payload(reserve{"apple", 2})).
		Step("charge", "http://127.0.0.1:8082/charge", "http://127.0.0.1:8082/refund", saga.Payload(map[string]int{"cents": 300})).
		Timeout(30 * time.Second).
		Build()
	if err != nil {
		log.Fatal(err)
	}
	b, _ := json.MarshalIndent(spec, "", "  ")
	fmt.Println(string(b))
	// Output:
	// {
	//   "gid": "order-42",
	//   "steps": [
	//     {
	//       "name": "reserve",
	//       "action": "http://127.0.0.1:8081/reserve",
	//       "compensate": "http://127.0.0.1:8081/release",
	//       "payload": {
	//         "sku": "apple",
	//         "qty": 2
	//       }
	//     },
	//     {
	//       "name": "charge",
	//       "action": "http://127.0.0.1:8082/charge",
	//       "compensate": "http://127.0.0.1:8082/refund",
	//       "payload": {
	//         "cents": 300
	//       }
	//     }
	//   ],
	//   "timeout": "30s"
	// }
}

// Build reports every problem at once, each matching dtx.ErrInvalid, and
// returns no spec.
func TestBuilder_RefusesWhatTheCoordinatorWould(t *testing.T) {
	for _, c := range []struct {
		b    *saga.Builder
		want string
	}{
		{saga.New("g"), "at least one step"},
		{saga.New("g").Step("a", "not-a-url", ""), `step 0 (a): URL "not-a-url" is not absolute`},
		{saga.New("bad gid!").Step("a", "http://h:1/a", ""), "gid"},
		{saga.New("g").Step("a", "http://h:1/a", "", saga.Payload(make(chan int))), `step "a": payload`},
		{saga.New("g").Step("a", "http://h:1/a", "", saga.Payload(json.RawMessage(`{`))), "not valid JSON"},
		{saga.New("g").Step("a", "http://h:1/a", "").Timeout(time.Millisecond), "timeout"},
	} {
		spec, err := c.b.Build()
		require.ErrorIs(t, err, dtx.ErrInvalid)
		require.ErrorContains(t, err, c.want)
		require.Zero(t, spec.GID)
	}
}

// Build checks without filling defaults: the spec is what was written, and
// Retry is carried.
func TestBuilder_BuildLeavesDefaultsToTheCoordinator(t *testing.T) {
	spec, err := saga.New("g").Step("", "http://h:1/a", "http://h:1/u", saga.Retry(saga.RetryPolicy{MaxAttempts: 3})).Build()
	require.NoError(t, err)
	require.Empty(t, spec.Steps[0].Name, "Normalize's default name is not written into the spec")
	require.Zero(t, spec.Timeout)
	require.Equal(t, 3, spec.Steps[0].Retry.MaxAttempts)
}
