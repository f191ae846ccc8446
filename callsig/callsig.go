// Package callsig signs and verifies branch calls, so that a participant
// runs only the calls its coordinator sent.
//
// The coordinator's transport signs every call with a Signer; the
// participant checks it with a Verifier before the barrier runs. A
// signature covers the gid, the branch index, the operation, the attempt,
// a deadline (the absolute time after which the call is refused) and the
// SHA-256 of the body, so a captured call can be replayed only unchanged,
// only until its deadline, and an unchanged replay is a duplicate delivery
// the barrier already makes harmless. Without the key nobody can make a
// call a participant accepts: not a compensation of a saga that succeeded,
// not a cancel sent ahead of a predictable gid.
//
// Two algorithms are supported: HMAC-SHA256 with a secret shared by the
// coordinator and its participants, and Ed25519, where participants hold
// only the public key and so cannot sign calls themselves. Keys carry an
// id, sent with each signature, for rotation: add the new key to every
// verifier, switch the signer to it, then remove the old one.
//
// A key is written as one line, passed in a file or an environment variable:
//
//	hmac:<kid>:<base64 secret of at least 32 bytes>
//	ed25519:<kid>:<base64 64-byte private key>      (signs and verifies)
//	ed25519-public:<kid>:<base64 32-byte public key> (verifies only)
//
// The package does no I/O: reading a key file is the caller's.
package callsig

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dtxhq/dtx"
)

// Header names of a signed call, beside dtx's Dtx-Gid, Dtx-Branch, Dtx-Op
// and Dtx-Attempt.
const (
	// HeaderDeadline carries the call's deadline, RFC 3339 with
	// nanoseconds, UTC. It is signed.
	HeaderDeadline = "Dtx-Deadline"
	// HeaderSignature carries "<kid>:<base64url signature>".
	HeaderSignature = "Dtx-Signature"
)

// Algorithm names, the first field of an encoded key.
const (
	AlgHMAC          = "hmac"
	AlgEd25519       = "ed25519"
	AlgEd25519Public = "ed25519-public"
)

// Time bounds of a signature.
const (
	// MaxValidity is the longest a Signer makes a signature valid for:
	// a call's deadline is at most this far ahead of its signing.
	MaxValidity = 5 * time.Minute
	// DefaultSkew is the clock difference between coordinator and
	// participant a Verifier allows by default.
	DefaultSkew = 30 * time.Second
	// minSecret is the shortest HMAC secret accepted.
	minSecret = 32
)

// Errors of Verify; every refusal wraps ErrRefused.
var (
	ErrRefused    = errors.New("callsig: call refused")
	ErrMissing    = fmt.Errorf("%w: not signed (no %s header)", ErrRefused, HeaderSignature)
	ErrMalformed  = fmt.Errorf("%w: malformed signature", ErrRefused)
	ErrUnknownKey = fmt.Errorf("%w: unknown key id", ErrRefused)
	ErrBadMAC     = fmt.Errorf("%w: signature does not match the call", ErrRefused)
	ErrExpired    = fmt.Errorf("%w: deadline passed", ErrRefused)
	ErrTooFar     = fmt.Errorf("%w: deadline too far ahead", ErrRefused)
)

// kidRE is what a key id may be.
var kidRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Key is one signing or verifying key. Its zero value is not a key; make
// one with ParseKey or Generate.
type Key struct {
	alg    string
	id     string
	secret []byte             // hmac
	priv   ed25519.PrivateKey // ed25519 (nil for a public-only key)
	pub    ed25519.PublicKey  // ed25519, ed25519-public
}

// ID is the key's id.
func (k Key) ID() string { return k.id }

// Alg is the key's algorithm: AlgHMAC, AlgEd25519 or AlgEd25519Public.
func (k Key) Alg() string { return k.alg }

// CanSign reports whether the key can sign (HMAC and Ed25519 private keys).
func (k Key) CanSign() bool { return k.alg == AlgHMAC || k.alg == AlgEd25519 }

// Public returns the key a participant needs to verify: the public half
// of an Ed25519 key, or the HMAC key itself (a shared secret).
func (k Key) Public() Key {
	if k.alg == AlgEd25519 {
		return Key{alg: AlgEd25519Public, id: k.id, pub: k.pub}
	}
	return k
}

// Encode writes the key in the form ParseKey reads. It contains the
// secret of HMAC and Ed25519 private keys.
func (k Key) Encode() string {
	var raw []byte
	switch k.alg {
	case AlgHMAC:
		raw = k.secret
	case AlgEd25519:
		raw = k.priv
	case AlgEd25519Public:
		raw = k.pub
	}
	return k.alg + ":" + k.id + ":" + base64.StdEncoding.EncodeToString(raw)
}

// String names the key without its secret.
func (k Key) String() string { return k.alg + ":" + k.id }

// Generate makes a new random key of alg (AlgHMAC or AlgEd25519) with id kid.
func Generate(alg, kid string) (Key, error) {
	if !kidRE.MatchString(kid) {
		return Key{}, fmt.Errorf("callsig: key id %q: want 1-64 characters out of A-Z, a-z, 0-9, '.', '_' and '-'", kid)
	}
	switch alg {
	case AlgHMAC:
		secret := make([]byte, 32)
		rand.Read(secret)
		return Key{alg: AlgHMAC, id: kid, secret: secret}, nil
	case AlgEd25519:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return Key{}, fmt.Errorf("callsig: generate: %w", err)
		}
		return Key{alg: AlgEd25519, id: kid, priv: priv, pub: pub}, nil
	}
	return Key{}, fmt.Errorf("callsig: unknown algorithm %q: want %q or %q", alg, AlgHMAC, AlgEd25519)
}

// ParseKey reads one key "<alg>:<kid>:<base64>" (see the package doc).
// Its errors never contain the secret.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	alg, rest, ok1 := strings.Cut(s, ":")
	kid, b64, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return Key{}, errors.New("callsig: a key is <alg>:<kid>:<base64 key> (alg hmac, ed25519 or ed25519-public)")
	}
	if !kidRE.MatchString(kid) {
		return Key{}, fmt.Errorf("callsig: key id %q: want 1-64 characters out of A-Z, a-z, 0-9, '.', '_' and '-'", kid)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Key{}, fmt.Errorf("callsig: key %s:%s: the key is not valid standard base64", alg, kid)
	}
	switch alg {
	case AlgHMAC:
		if len(raw) < minSecret {
			return Key{}, fmt.Errorf("callsig: key %s:%s: the secret has %d bytes, want at least %d", alg, kid, len(raw), minSecret)
		}
		return Key{alg: alg, id: kid, secret: raw}, nil
	case AlgEd25519:
		if len(raw) != ed25519.PrivateKeySize {
			return Key{}, fmt.Errorf("callsig: key %s:%s: a private key has %d bytes, not %d", alg, kid, ed25519.PrivateKeySize, len(raw))
		}
		priv := ed25519.PrivateKey(raw)
		// Re-derive from the seed so a tampered public half is caught.
		if !ed25519.NewKeyFromSeed(priv.Seed()).Equal(priv) {
			return Key{}, fmt.Errorf("callsig: key %s:%s: the private key is inconsistent", alg, kid)
		}
		return Key{alg: alg, id: kid, priv: priv, pub: priv.Public().(ed25519.PublicKey)}, nil
	case AlgEd25519Public:
		if len(raw) != ed25519.PublicKeySize {
			return Key{}, fmt.Errorf("callsig: key %s:%s: a public key has %d bytes, not %d", alg, kid, ed25519.PublicKeySize, len(raw))
		}
		return Key{alg: alg, id: kid, pub: ed25519.PublicKey(raw)}, nil
	}
	return Key{}, fmt.Errorf("callsig: unknown key algorithm %q: want %s, %s or %s", alg, AlgHMAC, AlgEd25519, AlgEd25519Public)
}

// ParseKeys reads keys separated by newlines or commas; blank lines and
// lines starting with '#' (comments, which may contain commas) are skipped. It refuses an empty list and two
// keys with one id. The first key is the one a signer uses.
func ParseKeys(text string) ([]Key, error) {
	var keys []Key
	seen := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, item := range strings.Split(line, ",") {
			if strings.TrimSpace(item) == "" {
				continue
			}
			k, err := ParseKey(item)
			if err != nil {
				return nil, err
			}
			if seen[k.id] {
				return nil, fmt.Errorf("callsig: two keys with id %q", k.id)
			}
			seen[k.id] = true
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("callsig: no key")
	}
	return keys, nil
}

// Call is what a signature covers.
type Call struct {
	GID     string
	Branch  int
	Op      string
	Attempt int
	// Deadline is when the signature stops being accepted.
	Deadline time.Time
	// Body is the request body exactly as sent.
	Body []byte
}

// message is the byte string signed for c: a version tag and each field
// length-prefixed, so no two calls share a message.
func (c Call) message() []byte {
	digest := sha256.Sum256(c.Body)
	var b []byte
	field := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	field("dtx-call-v1")
	field(c.GID)
	field(strconv.Itoa(c.Branch))
	field(c.Op)
	field(strconv.Itoa(c.Attempt))
	field(strconv.FormatInt(c.Deadline.UnixNano(), 10))
	field(string(digest[:]))
	return b
}

// FormatDeadline writes a deadline as HeaderDeadline carries it.
func FormatDeadline(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ParseDeadline reads a HeaderDeadline value.
func ParseDeadline(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// Signer signs calls with one key. It is safe for concurrent use.
type Signer struct{ key Key }

// NewSigner returns a signer with key, which must be able to sign.
func NewSigner(key Key) (*Signer, error) {
	if !key.CanSign() {
		return nil, fmt.Errorf("callsig: key %s cannot sign (a public key only verifies)", key)
	}
	return &Signer{key: key}, nil
}

// KeyID is the id of the key signing.
func (s *Signer) KeyID() string { return s.key.id }

// Deadline is the deadline to sign for a call made at now that may take
// timeout: now+timeout, at most now+MaxValidity (MaxValidity for a zero
// timeout).
func Deadline(now time.Time, timeout time.Duration) time.Time {
	if timeout <= 0 || timeout > MaxValidity {
		timeout = MaxValidity
	}
	return now.Add(timeout)
}

// Sign returns the HeaderSignature value of c.
func (s *Signer) Sign(c Call) string {
	msg := c.message()
	var sig []byte
	switch s.key.alg {
	case AlgHMAC:
		m := hmac.New(sha256.New, s.key.secret)
		m.Write(msg)
		sig = m.Sum(nil)
	case AlgEd25519:
		sig = ed25519.Sign(s.key.priv, msg)
	}
	return s.key.id + ":" + base64.RawURLEncoding.EncodeToString(sig)
}

// Verifier checks signatures against a set of keys by id. Set its fields
// before use; then it is safe for concurrent use.
type Verifier struct {
	keys map[string]Key
	// Skew is the clock difference allowed between signer and verifier
	// (default DefaultSkew).
	Skew time.Duration
	// MaxAhead is how far ahead of now a deadline may be, before Skew
	// (default MaxValidity).
	MaxAhead time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// NewVerifier returns a verifier accepting signatures by any of keys
// (their public halves are enough).
func NewVerifier(keys ...Key) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("callsig: a verifier needs at least one key")
	}
	v := &Verifier{keys: map[string]Key{}}
	for _, k := range keys {
		if k.alg == "" {
			return nil, errors.New("callsig: zero Key")
		}
		if _, dup := v.keys[k.id]; dup {
			return nil, fmt.Errorf("callsig: two keys with id %q", k.id)
		}
		v.keys[k.id] = k.Public()
	}
	return v, nil
}

// Verify checks the HeaderSignature value sig of c. It returns nil if a
// known key signed exactly c and the deadline is neither past (beyond Skew)
// nor more than MaxAhead+Skew ahead; else an error wrapping ErrRefused
// (ErrMissing, ErrMalformed, ErrUnknownKey, ErrBadMAC, ErrExpired or
// ErrTooFar).
func (v *Verifier) Verify(c Call, sig string) error {
	if sig == "" {
		return ErrMissing
	}
	kid, b64, ok := strings.Cut(sig, ":")
	if !ok || !kidRE.MatchString(kid) {
		return ErrMalformed
	}
	raw, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return ErrMalformed
	}
	key, ok := v.keys[kid]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownKey, kid)
	}
	msg := c.message()
	switch key.alg {
	case AlgHMAC:
		m := hmac.New(sha256.New, key.secret)
		m.Write(msg)
		if len(raw) != sha256.Size || subtle.ConstantTimeCompare(m.Sum(nil), raw) != 1 {
			return ErrBadMAC
		}
	case AlgEd25519Public:
		if len(raw) != ed25519.SignatureSize || !ed25519.Verify(key.pub, msg, raw) {
			return ErrBadMAC
		}
	default:
		return ErrUnknownKey
	}
	// Time is checked after the signature, so an attacker learns nothing
	// about the clock from an unsigned call.
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	skew, ahead := v.Skew, v.MaxAhead
	if skew <= 0 {
		skew = DefaultSkew
	}
	if ahead <= 0 {
		ahead = MaxValidity
	}
	if now.After(c.Deadline.Add(skew)) {
		return ErrExpired
	}
	if c.Deadline.After(now.Add(ahead + skew)) {
		return ErrTooFar
	}
	return nil
}

// VerifyHeaders checks a call given by its headers (through get, as for
// participant.BranchFromHeaders) and body: it reads Dtx-Gid, Dtx-Branch,
// Dtx-Op, Dtx-Attempt, HeaderDeadline and HeaderSignature as sent, so a
// header that does not parse is refused as ErrMalformed.
func (v *Verifier) VerifyHeaders(get func(name string) string, body []byte) error {
	sig := get(HeaderSignature)
	if sig == "" {
		return ErrMissing
	}
	branch, err1 := strconv.Atoi(get(dtx.HeaderBranch))
	attempt, err2 := strconv.Atoi(get(dtx.HeaderAttempt))
	deadline, err3 := ParseDeadline(get(HeaderDeadline))
	if err1 != nil || err2 != nil {
		return fmt.Errorf("%w: Dtx-Branch and Dtx-Attempt must be numbers", ErrMalformed)
	}
	if err3 != nil {
		return fmt.Errorf("%w: %s must be an RFC 3339 time", ErrMalformed, HeaderDeadline)
	}
	return v.Verify(Call{GID: get(dtx.HeaderGID), Branch: branch, Op: get(dtx.HeaderOp), Attempt: attempt, Deadline: deadline, Body: body}, sig)
}

// SetHeaders signs c and sets HeaderDeadline and HeaderSignature through
// set (an http.Header's Set, or a map assignment).
func (s *Signer) SetHeaders(set func(name, value string), c Call) {
	set(HeaderDeadline, FormatDeadline(c.Deadline))
	set(HeaderSignature, s.Sign(c))
}
