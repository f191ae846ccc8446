// Package sharded spreads the transaction log over several stores (shards),
// for more transactions than one database commits.
//
// A global transaction lives in one shard, whole: its record, branches,
// history and lease. There are no cross-shard transactions, so every write
// (Create, Apply, ClaimOne, Release) goes to one shard and keeps that
// shard's guarantees (atomic steps fenced by the lease, group commit); only
// reads that span transactions (List, Counts, Attention, Backlog) and the
// recovery calls (Claim, Renew) visit every shard.
//
// # Placement
//
// The shard of a new transaction is chosen by rendezvous (highest random
// weight) hashing of its gid over the shards: every shard gets a score
// from hash(shard name, gid), and the highest score wins. Shards are named
// (Shard.Name), so the placement does not depend on their order, and
// adding a shard moves no existing transaction: a transaction stays in the
// shard that won when it was created. The new shard only wins a share of
// the new gids (1/n of them with n shards).
//
// Finding a transaction therefore walks the shards in descending score
// until it is found. With the shards listed oldest first (append new ones
// at the end), only some of them can hold a given gid: a shard can hold it
// only if every shard that scores higher was added after it (otherwise that
// older, higher shard would have won). Create checks those candidates, so
// a gid stays unique across shards after a shard is added; in a stable
// topology the first candidate is the winner itself and Create and Get
// cost one shard's work. Where a transaction lives is cached (bounded) for
// the transactions this process created, claimed or read.
//
// # Limits
//
// Removing or renaming a shard is not supported (its transactions would be
// lost from view). Each shard keeps its own leases: a coordinator claims
// from every shard, and renews in every shard. List and Attention merge
// every shard's page, so their cost grows with the number of shards.
package sharded

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/dtxhq/dtx"
)

// Shard is one store of a sharded log.
type Shard struct {
	// Name identifies the shard in the placement hash: keep it when the
	// shard moves to another address. Unique, non-empty.
	Name  string
	Store dtx.Store
}

// MaxCached bounds the gid → shard cache.
const MaxCached = 1 << 16

// Store is a dtx.Store over shards. It implements dtx.Purger when every
// shard does.
type Store struct {
	shards []Shard

	mu    sync.Mutex
	where map[string]int // gid -> shard index
}

var (
	_ dtx.Store  = (*Store)(nil)
	_ dtx.Purger = (*Store)(nil)
)

// New returns a store over shards, listed oldest first (a shard added
// later goes at the end). It takes ownership of the shards: Close closes
// them.
func New(shards ...Shard) (*Store, error) {
	if len(shards) == 0 {
		return nil, errors.New("sharded: no shards")
	}
	seen := map[string]bool{}
	for i, s := range shards {
		switch {
		case s.Name == "":
			return nil, fmt.Errorf("sharded: shard %d has no name", i)
		case seen[s.Name]:
			return nil, fmt.Errorf("sharded: shard name %q is used twice", s.Name)
		case s.Store == nil:
			return nil, fmt.Errorf("sharded: shard %q has no store", s.Name)
		}
		seen[s.Name] = true
	}
	return &Store{shards: slices.Clone(shards), where: map[string]int{}}, nil
}

// Shards returns the shards, oldest first.
func (s *Store) Shards() []Shard { return slices.Clone(s.shards) }

// score is the rendezvous weight of shard i for gid.
func (s *Store) score(i int, gid string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s.shards[i].Name))
	h.Write([]byte{0})
	h.Write([]byte(gid))
	// fnv mixes the last bytes weakly: finish with a 64-bit mixer so that
	// gids differing in their last character spread evenly.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// Place returns the index of the shard a new transaction gid goes to.
func (s *Store) Place(gid string) int {
	best, bestScore := 0, s.score(0, gid)
	for i := 1; i < len(s.shards); i++ {
		if sc := s.score(i, gid); sc > bestScore {
			best, bestScore = i, sc
		}
	}
	return best
}

// candidates returns the shards that may hold gid, in the order to look:
// descending score, keeping a shard only if every shard scoring higher is
// newer than it (see the package doc). The first is Place(gid).
func (s *Store) candidates(gid string) []int {
	order := make([]int, len(s.shards))
	for i := range order {
		order[i] = i
	}
	scores := make([]uint64, len(s.shards))
	for i := range scores {
		scores[i] = s.score(i, gid)
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	out := order[:0:0]
	oldest := len(s.shards)
	for _, i := range order {
		if i < oldest {
			out = append(out, i)
			oldest = i
		}
	}
	return out
}

func (s *Store) remember(gid string, i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.where) >= MaxCached {
		clear(s.where) // cheap and rare; lookups fall back to probing
	}
	s.where[gid] = i
}

func (s *Store) forget(gid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.where, gid)
}

func (s *Store) cached(gid string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.where[gid]
	return i, ok
}

// locate returns the shard holding gid, or dtx.ErrNotFound.
func (s *Store) locate(ctx context.Context, gid string) (int, error) {
	if i, ok := s.cached(gid); ok {
		return i, nil
	}
	for _, i := range s.candidates(gid) {
		_, _, err := s.shards[i].Store.Get(ctx, gid)
		switch {
		case err == nil:
			s.remember(gid, i)
			return i, nil
		case !errors.Is(err, dtx.ErrNotFound):
			return 0, fmt.Errorf("shard %s: %w", s.shards[i].Name, err)
		}
	}
	return 0, dtx.ErrNotFound
}

// Create records tx in the shard Place(tx.GID) chooses, after checking
// that no older shard holds the gid (ErrExists).
func (s *Store) Create(ctx context.Context, tx *dtx.Tx, branches []dtx.Branch) error {
	cands := s.candidates(tx.GID)
	for _, i := range cands[1:] {
		_, _, err := s.shards[i].Store.Get(ctx, tx.GID)
		switch {
		case err == nil:
			return dtx.ErrExists
		case !errors.Is(err, dtx.ErrNotFound):
			return fmt.Errorf("shard %s: %w", s.shards[i].Name, err)
		}
	}
	if err := s.shards[cands[0]].Store.Create(ctx, tx, branches); err != nil {
		return err
	}
	s.remember(tx.GID, cands[0])
	return nil
}

// Get reads gid from its shard.
func (s *Store) Get(ctx context.Context, gid string) (*dtx.Tx, []dtx.Branch, error) {
	if i, ok := s.cached(gid); ok {
		return s.shards[i].Store.Get(ctx, gid)
	}
	for _, i := range s.candidates(gid) {
		tx, br, err := s.shards[i].Store.Get(ctx, gid)
		if err == nil {
			s.remember(gid, i)
			return tx, br, nil
		}
		if !errors.Is(err, dtx.ErrNotFound) {
			return nil, nil, err
		}
	}
	return nil, nil, dtx.ErrNotFound
}

// Events reads gid's history from its shard (none for an unknown gid, as
// a single store answers).
func (s *Store) Events(ctx context.Context, gid string) ([]dtx.Event, error) {
	i, err := s.locate(ctx, gid)
	if errors.Is(err, dtx.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.shards[i].Store.Events(ctx, gid)
}

// Apply writes u in u.GID's shard. A transaction that is not found is not
// held by u.Owner: ErrLeaseLost, as a single store answers.
func (s *Store) Apply(ctx context.Context, u dtx.Update) error {
	i, err := s.locate(ctx, u.GID)
	if errors.Is(err, dtx.ErrNotFound) {
		return dtx.ErrLeaseLost
	}
	if err != nil {
		return err
	}
	if err := s.shards[i].Store.Apply(ctx, u); err != nil {
		return err
	}
	if u.Status == dtx.StatusSucceeded || u.Status == dtx.StatusFailed {
		s.forget(u.GID)
	}
	return nil
}

// ClaimOne leases gid in its shard.
func (s *Store) ClaimOne(ctx context.Context, owner, gid string, now, until time.Time) (bool, error) {
	i, err := s.locate(ctx, gid)
	if errors.Is(err, dtx.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return s.shards[i].Store.ClaimOne(ctx, owner, gid, now, until)
}

// Release gives up owner's lease on gid in its shard.
func (s *Store) Release(ctx context.Context, owner, gid string) error {
	i, err := s.locate(ctx, gid)
	if errors.Is(err, dtx.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.shards[i].Store.Release(ctx, owner, gid)
}

// Claim leases up to limit expired transactions, from every shard in
// turn. The shard it starts with rotates, so that no shard's backlog
// waits behind another's.
func (s *Store) Claim(ctx context.Context, owner string, now, until time.Time, limit int) ([]string, error) {
	var out []string
	start := int(now.UnixNano() % int64(len(s.shards)))
	var errs []error
	for k := range s.shards {
		if len(out) >= limit {
			break
		}
		i := (start + k) % len(s.shards)
		gids, err := s.shards[i].Store.Claim(ctx, owner, now, until, limit-len(out))
		if err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", s.shards[i].Name, err))
			continue
		}
		for _, g := range gids {
			s.remember(g, i)
		}
		out = append(out, gids...)
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// A shard that failed is claimed from on the next pass; what the others
	// gave is leased now and must be driven.
	return out, nil
}

// Renew extends owner's leases in every shard. A shard that fails makes
// Renew fail (its leases may lapse: the coordinator stops writing to
// them), after the others were renewed.
func (s *Store) Renew(ctx context.Context, owner string, until time.Time) (int, error) {
	n := 0
	var errs []error
	for _, sh := range s.shards {
		k, err := sh.Store.Renew(ctx, owner, until)
		if err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", sh.Name, err))
			continue
		}
		n += k
	}
	return n, errors.Join(errs...)
}

// Backlog sums the shards' backlogs.
func (s *Store) Backlog(ctx context.Context, now time.Time) (int, error) {
	n := 0
	for _, sh := range s.shards {
		k, err := sh.Store.Backlog(ctx, now)
		if err != nil {
			return 0, fmt.Errorf("shard %s: %w", sh.Name, err)
		}
		n += k
	}
	return n, nil
}

// Counts sums the shards' counts.
func (s *Store) Counts(ctx context.Context) (map[dtx.Status]int, error) {
	out := map[dtx.Status]int{}
	for _, sh := range s.shards {
		c, err := sh.Store.Counts(ctx)
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", sh.Name, err)
		}
		for st, n := range c {
			out[st] += n
		}
	}
	return out, nil
}

// List merges the shards' pages: newest first (created_at, then gid,
// descending, as every store orders), at most f.Limit.
func (s *Store) List(ctx context.Context, f dtx.ListFilter) ([]dtx.Tx, error) {
	limit := cmp.Or(f.Limit, 100)
	var all []dtx.Tx
	for _, sh := range s.shards {
		txs, err := sh.Store.List(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", sh.Name, err)
		}
		all = append(all, txs...)
	}
	slices.SortFunc(all, func(a, b dtx.Tx) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.GID, a.GID))
	})
	if len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// Attention merges the shards' answers: oldest first, at most f.Limit.
func (s *Store) Attention(ctx context.Context, f dtx.AttentionFilter) ([]dtx.TxDetail, error) {
	limit := cmp.Or(f.Limit, 100)
	var all []dtx.TxDetail
	for _, sh := range s.shards {
		ds, err := sh.Store.Attention(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", sh.Name, err)
		}
		all = append(all, ds...)
	}
	slices.SortFunc(all, func(a, b dtx.TxDetail) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.GID, b.GID))
	})
	if len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// PurgeFinished purges up to limit finished transactions, from the shards
// in turn. It fails if a shard is not a dtx.Purger.
func (s *Store) PurgeFinished(ctx context.Context, before time.Time, limit int) (int, error) {
	n := 0
	for _, sh := range s.shards {
		if n >= limit {
			break
		}
		p, ok := sh.Store.(dtx.Purger)
		if !ok {
			return n, fmt.Errorf("sharded: shard %s cannot purge", sh.Name)
		}
		k, err := p.PurgeFinished(ctx, before, limit-n)
		n += k
		if err != nil {
			return n, fmt.Errorf("shard %s: %w", sh.Name, err)
		}
	}
	return n, nil
}

// Close closes every shard.
func (s *Store) Close() error {
	var errs []error
	for _, sh := range s.shards {
		if err := sh.Store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", sh.Name, err))
		}
	}
	return errors.Join(errs...)
}
