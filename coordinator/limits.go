package coordinator

import (
	"errors"
	"fmt"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
)

// normalize is saga.Spec.Normalize plus this coordinator's upper bounds on
// the timeouts (Config.MaxTimeout, Config.MaxBranchTimeout): a spec above
// them fails with dtx.ErrInvalid naming the field; a spec without a
// timeout gets the saga default, capped at the maximum.
func (c *Coordinator) normalize(spec *saga.Spec) error {
	askedTimeout, askedBranch := spec.Timeout != 0, spec.BranchTimeout != 0
	var errs []error
	if err := spec.Normalize(); err != nil {
		errs = append(errs, err)
	}
	for _, t := range []struct {
		field string
		asked bool
		v     *dtx.Duration
		max   time.Duration
	}{
		{"timeout", askedTimeout, &spec.Timeout, c.cfg.MaxTimeout},
		{"branch_timeout", askedBranch, &spec.BranchTimeout, c.cfg.MaxBranchTimeout},
	} {
		switch {
		case t.v.Std() <= t.max:
		case t.asked:
			errs = append(errs, fmt.Errorf("%w: %s: %v is above this server's maximum of %v", dtx.ErrInvalid, t.field, t.v.Std(), t.max))
		default:
			*t.v = dtx.Duration(t.max)
		}
	}
	return errors.Join(errs...)
}
