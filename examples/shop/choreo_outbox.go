package shop

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/outbox"
	"github.com/dtxhq/dtx/participant"
)

// outboxDeadLetterRoutes serves the events the service's relay gave up on
// (Config.OutboxMaxAttempts), next to the consumers' dead letters:
//
//	GET  /events/outbox/dead-letters                 list them (FAILED rows)
//	POST /events/outbox/dead-letters/replay?seq=N    put one back into the outbox
//	POST /events/outbox/dead-letters/discard?seq=N   drop one
func (es *eventService) outboxDeadLetterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /events/outbox/dead-letters", func(w http.ResponseWriter, r *http.Request) {
		dl, err := es.outbox.DeadLetters(r.Context(), es.db)
		if err != nil {
			problem.Write(w, http.StatusInternalServerError, err.Error())
			return
		}
		type item struct {
			Seq      int64     `json:"seq"`
			ID       string    `json:"id"`
			Topic    string    `json:"topic"`
			Key      string    `json:"key"`
			Status   string    `json:"status"`
			Error    string    `json:"error"`
			Attempts int       `json:"attempts"`
			Created  time.Time `json:"created"`
			Failed   time.Time `json:"failed"`
		}
		out := []item{}
		for _, d := range dl {
			out = append(out, item{d.Seq, d.Message.ID, d.Message.Topic, d.Message.Key, "FAILED", d.Error, d.Attempts, d.Created, d.Failed})
		}
		participant.WriteJSON(w, http.StatusOK, out)
	})
	act := func(replay bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			seq, err := strconv.ParseInt(r.URL.Query().Get("seq"), 10, 64)
			if err != nil || seq <= 0 {
				problem.Write(w, http.StatusBadRequest, "query parameter seq must be a positive integer")
				return
			}
			if replay {
				err = es.outbox.Replay(r.Context(), es.db, seq)
			} else {
				err = es.outbox.Discard(r.Context(), es.db, seq)
			}
			switch {
			case errors.Is(err, outbox.ErrNotFound):
				problem.Write(w, http.StatusNotFound, err.Error())
			case err != nil:
				problem.Write(w, http.StatusInternalServerError, err.Error())
			default:
				if replay {
					es.relay.Notify()
				}
				w.WriteHeader(http.StatusNoContent)
			}
		}
	}
	mux.HandleFunc("POST /events/outbox/dead-letters/replay", act(true))
	mux.HandleFunc("POST /events/outbox/dead-letters/discard", act(false))
}
