package flow

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/dtxhq/dtx/internal/problem"
)

// Handler serves the flows of st:
//
//	GET /v1/flows?limit=N   the most recently active flows (Summary)
//	GET /v1/flows/{id}      one flow's events in causal order
func Handler(st *Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/flows", func(w http.ResponseWriter, r *http.Request) {
		limit := 100
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				problem.Write(w, http.StatusBadRequest, "limit must be an integer between 1 and 1000")
				return
			}
			limit = n
		}
		flows, err := st.Flows(r.Context(), limit)
		if err != nil {
			problem.Write(w, http.StatusInternalServerError, err.Error())
			return
		}
		if flows == nil {
			flows = []Summary{}
		}
		problem.WriteJSON(w, http.StatusOK, map[string]any{"flows": flows})
	})
	mux.HandleFunc("GET /v1/flows/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		evs, err := st.Timeline(r.Context(), id)
		switch {
		case errors.Is(err, ErrNotFound):
			problem.Write(w, http.StatusNotFound, "no events for correlation id "+strconv.Quote(id))
			return
		case err != nil:
			problem.Write(w, http.StatusInternalServerError, err.Error())
			return
		}
		problem.WriteJSON(w, http.StatusOK, map[string]any{"correlation_id": id, "events": evs})
	})
	return mux
}

// Mount serves the flows of st (see Handler) in front of next, which gets
// every other request.
func Mount(next http.Handler, st *Store) http.Handler {
	h := Handler(st)
	mux := http.NewServeMux()
	mux.Handle("/", next)
	mux.Handle("/v1/flows", h)
	mux.Handle("/v1/flows/", h)
	return mux
}
