package server

// OnPollBaseline makes the event stream's poller of s call f once it has
// read its baseline: changes from then on are reported. Call it before the
// first stream opens.
func OnPollBaseline(s *Server, f func()) { s.events.baselined = f }
