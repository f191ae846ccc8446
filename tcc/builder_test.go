package tcc_test

import (
	"encoding/json"
	"fmt"
	"log"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
)

// A TCC transaction written in Go: each participant's try reserves,
// confirm spends the reservation, cancel releases it.
func ExampleNew() {
	inv, pay := "http://127.0.0.1:8081/tcc", "http://127.0.0.1:8082/tcc"
	spec, err := tcc.New("order-43").
		Participant("inventory", inv+"/try", inv+"/confirm", inv+"/cancel", saga.Payload(map[string]int{"qty": 1})).
		Participant("payment", pay+"/try", pay+"/confirm", pay+"/cancel", saga.Payload(map[string]int{"cents": 150})).
		Build()
	if err != nil {
		log.Fatal(err)
	}
	b, _ := json.Marshal(spec)
	fmt.Println(string(b))
	// Output:
	// {"gid":"order-43","participants":[{"name":"inventory","try":"http://127.0.0.1:8081/tcc/try","confirm":"http://127.0.0.1:8081/tcc/confirm","cancel":"http://127.0.0.1:8081/tcc/cancel","payload":{"qty":1}},{"name":"payment","try":"http://127.0.0.1:8082/tcc/try","confirm":"http://127.0.0.1:8082/tcc/confirm","cancel":"http://127.0.0.1:8082/tcc/cancel","payload":{"cents":150}}]}
}

func TestBuilder_RefusesWhatTheCoordinatorWould(t *testing.T) {
	for _, c := range []struct {
		b    *tcc.Builder
		want string
	}{
		{tcc.New("g"), "participant"},
		{tcc.New("g").Participant("a", "http://h:1/try", "http://h:1/confirm", ""), "cancel"},
		{tcc.New("g").Participant("a", "nope", "http://h:1/c", "http://h:1/x"), "nope"},
		{tcc.New("g").Participant("a", "http://h:1/t", "", "http://h:1/x", saga.Payload(make(chan int))), `participant "a": payload`},
	} {
		spec, err := c.b.Build()
		require.ErrorIs(t, err, dtx.ErrInvalid, c.want)
		require.ErrorContains(t, err, c.want)
		require.Zero(t, spec.GID)
	}
}
