package tcc

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
)

// Limits on a TCC transaction, besides those of the saga it becomes (see
// saga.Spec.Normalize: gid, URLs, payloads, timeouts).
const (
	// MaxParticipants bounds the participants: each becomes up to two
	// saga steps (try and confirm), within saga.MaxSteps.
	MaxParticipants = saga.MaxSteps / 2
	// MaxNameLength bounds a participant name, in bytes: its steps are
	// named <name>.try, <name>.confirm and <name>.cancel, within
	// saga.MaxNameLength.
	MaxNameLength = saga.MaxNameLength - len(".confirm")
)

// checkLimits refuses (dtx.ErrInvalid) too many participants and names
// that are too long or hold control characters, naming the field.
func (s *Spec) checkLimits() error {
	if len(s.Participants) > MaxParticipants {
		return fmt.Errorf("%w: participants: %d; the limit is %d", dtx.ErrInvalid, len(s.Participants), MaxParticipants)
	}
	var errs []error
	for i, p := range s.Participants {
		switch {
		case len(p.Name) > MaxNameLength:
			errs = append(errs, fmt.Errorf("%w: participants[%d].name is %d bytes long; the limit is %d", dtx.ErrInvalid, i, len(p.Name), MaxNameLength))
		case !utf8.ValidString(p.Name):
			errs = append(errs, fmt.Errorf("%w: participants[%d].name is not valid UTF-8", dtx.ErrInvalid, i))
		default:
			for _, r := range p.Name {
				if unicode.IsControl(r) {
					errs = append(errs, fmt.Errorf("%w: participants[%d].name %s contains a control character", dtx.ErrInvalid, i, saga.Quote(p.Name)))
					break
				}
			}
		}
	}
	return errors.Join(errs...)
}
