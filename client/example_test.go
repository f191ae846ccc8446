package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/embed"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
)

// A client for a coordinator run by `dtx server`; a mistake in the Config
// is named before any request.
func ExampleNew() {
	c, err := client.New(client.Config{URL: "http://127.0.0.1:8480", Token: os.Getenv("DTX_ADMIN_TOKEN")})
	if err != nil {
		log.Fatal(err)
	}
	_ = c
	_, err = client.New(client.Config{URL: "127.0.0.1:8480"})
	fmt.Println(err)
	// Output: client: Config.URL "127.0.0.1:8480": want an absolute http:// or https:// URL, e.g. "http://127.0.0.1:8480"
}

// Start a TCC transaction, then wait for its outcome; a 4xx answer is an
// *APIError matching ErrNotFound, ErrConflict or ErrInvalid.
func ExampleClient_StartTCC() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "dtx-example")
	defer os.RemoveAll(dir)
	// A coordinator (embedded here; client.NewClient for `dtx server`) and
	// a participant that accepts every call.
	dc, err := embed.Open(ctx, embed.Config{Store: "sqlite://" + filepath.Join(dir, "dtx.db")})
	if err != nil {
		log.Fatal(err)
	}
	defer dc.Close(ctx)
	part := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer part.Close()
	inv := part.URL + "/inventory"

	c := dc.Client()
	spec, err := tcc.New("order-43").
		Participant("inventory", inv+"/try", inv+"/confirm", inv+"/cancel", saga.Payload(map[string]int{"qty": 1})).
		Build()
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.StartTCC(ctx, spec); err != nil {
		log.Fatal(err)
	}
	tx, err := c.Wait(ctx, spec.GID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tx.GID, tx.Status)

	_, err = c.Wait(ctx, "no-such-order")
	var apiErr *client.APIError
	if errors.As(err, &apiErr) && errors.Is(err, client.ErrNotFound) {
		fmt.Println(apiErr.Status, apiErr.Type)
	}
	// Output:
	// order-43 succeeded
	// 404 urn:dtx:problem:transaction-not-found
}
