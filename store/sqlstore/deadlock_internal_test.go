package sqlstore

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCommitAgainAfterDeadlock: a batch rolled back to break a deadlock is
// run again (at most deadlockRetries times); any other error is returned
// at once.
func TestCommitAgainAfterDeadlock(t *testing.T) {
	errDeadlock, errOther := errors.New("deadlock"), errors.New("other")
	s := &Store{d: Dialect{IsDeadlock: func(err error) bool { return errors.Is(err, errDeadlock) }}}
	batch := []*write{{}, {}}
	commitFailing := func(errs ...error) (func([]*write) ([]error, error), *int) {
		calls := new(int)
		return func(b []*write) ([]error, error) {
			require.Equal(t, batch, b)
			*calls++
			if *calls <= len(errs) {
				return nil, errs[*calls-1]
			}
			return make([]error, len(b)), nil
		}, calls
	}

	fn, calls := commitFailing(errDeadlock, errDeadlock)
	res, err := s.commitAgainAfterDeadlock(fn, batch)
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.Equal(t, 3, *calls)

	fn, calls = commitFailing(errOther)
	_, err = s.commitAgainAfterDeadlock(fn, batch)
	require.ErrorIs(t, err, errOther)
	require.Equal(t, 1, *calls)

	always := make([]error, 100)
	for i := range always {
		always[i] = errDeadlock
	}
	fn, calls = commitFailing(always...)
	_, err = s.commitAgainAfterDeadlock(fn, batch)
	require.ErrorIs(t, err, errDeadlock)
	require.Equal(t, 1+deadlockRetries, *calls)

	s.d.IsDeadlock = nil // SQLite: one writer, no deadlock
	fn, calls = commitFailing(errDeadlock)
	_, err = s.commitAgainAfterDeadlock(fn, batch)
	require.ErrorIs(t, err, errDeadlock)
	require.Equal(t, 1, *calls)
}
