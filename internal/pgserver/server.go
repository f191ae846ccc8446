package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dtxhq/dtx/internal/dbproc"
)

// ErrNotInstalled is returned (wrapped) by Start when no PostgreSQL
// binaries can be found.
var ErrNotInstalled = errors.New("pgserver: PostgreSQL binaries (initdb, postgres) not found")

// EnvBinDir names a directory holding initdb and postgres; it overrides the
// search of PATH and /usr/lib/postgresql.
const EnvBinDir = "DTX_PG_BIN"

// superuser is the database superuser created by initdb.
const superuser = "postgres"

// Server is a running PostgreSQL server started by Start. Its methods
// are safe for concurrent use.
type Server struct {
	dataDir  string
	sockDir  string
	ownsSock bool // sockDir was created outside dir and must be removed
	spec     dbproc.Spec

	mu      sync.Mutex // guards proc (Restart replaces it) and stopped
	proc    *dbproc.Proc
	stopped bool

	stopOnce sync.Once
	stopErr  error
}

// Start initialises a new cluster in dir/pgdata (dir must exist; it
// is created if missing) and starts a postgres server on 127.0.0.1 with a
// free port, fsync on, max_connections=200, shared_buffers=128MB and max_prepared_transactions=64. The
// server is killed if the calling process dies; call Stop to shut it down
// cleanly. ctx bounds the start-up only.
//
// When running as root, the server runs as the "postgres" user (or
// "nobody"): dir and every directory above it must then be searchable by
// that user.
func Start(ctx context.Context, dir string) (*Server, error) {
	return StartWith(ctx, dir, Options{})
}

// Options adjust a server started by StartWith.
type Options struct {
	// Settings are extra server parameters (name → value), passed as
	// "-c name=value" after Start's own, so they may override them; for
	// instance {"wal_level": "logical"} for logical replication.
	Settings map[string]string
}

// StartWith is Start with extra options.
func StartWith(ctx context.Context, dir string, opts Options) (*Server, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := checkTraversable(dir, cred); err != nil {
			return nil, err
		}
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("pgserver: chown %s: %w", dir, err)
		}
	}

	s := &Server{
		dataDir: filepath.Join(dir, "pgdata"),
		sockDir: filepath.Join(dir, "sock"),
	}
	// Unix socket paths are limited to ~107 bytes.
	if len(s.sockDir)+len("/.s.PGSQL.65535") > 100 {
		d, err := os.MkdirTemp("/tmp", "dtxpg-")
		if err != nil {
			return nil, fmt.Errorf("pgserver: %w", err)
		}
		s.sockDir, s.ownsSock = d, true
	} else if err := os.MkdirAll(s.sockDir, 0o700); err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	if cred != nil {
		if err := os.Chown(s.sockDir, int(cred.Uid), int(cred.Gid)); err != nil {
			s.cleanupSock()
			return nil, fmt.Errorf("pgserver: chown %s: %w", s.sockDir, err)
		}
	}

	if err := initdb(ctx, bin, dir, s.dataDir, cred); err != nil {
		s.cleanupSock()
		return nil, err
	}
	var extra []string
	names := make([]string, 0, len(opts.Settings))
	for name := range opts.Settings {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		extra = append(extra, "-c", name+"="+opts.Settings[name])
	}
	s.spec = dbproc.Spec{
		Prefix:  "pgserver",
		Name:    "postgres",
		LogPath: filepath.Join(dir, "postgres.log"),
		Command: func(port int) *exec.Cmd {
			// Not CommandContext: ctx bounds start-up, not the server's life.
			args := []string{
				"-D", s.dataDir,
				"-p", strconv.Itoa(port),
				"-c", "listen_addresses=127.0.0.1",
				"-c", "unix_socket_directories=" + s.sockDir,
				"-c", "max_connections=200",
				"-c", "shared_buffers=128MB",
				"-c", "max_prepared_transactions=64", // for XA (PREPARE TRANSACTION)
				"-c", "fsync=on",
				"-c", "synchronous_commit=on",
				"-c", "logging_collector=off",
			}
			return dbproc.Command(nil, filepath.Join(bin, "postgres"), dir, cred, append(args, extra...)...)
		},
		Ready: func(ctx context.Context, port int) error {
			conn, err := pgx.Connect(ctx, dsn(port, "postgres"))
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			return conn.Ping(ctx)
		},
	}
	s.proc, err = dbproc.Start(ctx, s.spec)
	if err != nil {
		s.cleanupSock()
		return nil, err
	}
	return s, nil
}

// findBinDir locates the directory holding initdb and postgres.
func findBinDir() (string, error) {
	ok := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if d := os.Getenv(EnvBinDir); d != "" {
		if ok(d) {
			return d, nil
		}
		return "", fmt.Errorf("%w in %s=%s", ErrNotInstalled, EnvBinDir, d)
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if d := filepath.Dir(p); ok(d) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Highest major version first ("15" > "9.6").
	ver := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return ver(dirs[i]) > ver(dirs[j]) })
	for _, d := range dirs {
		if ok(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w (looked at $%s, pg_ctl on PATH, /usr/lib/postgresql/*/bin)", ErrNotInstalled, EnvBinDir)
}

// runAs returns the credentials to run PostgreSQL with: nil unless we are
// root, in which case those of "postgres" or, failing that, "nobody".
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, errors.New("pgserver: running as root and neither a \"postgres\" nor a \"nobody\" user exists to run PostgreSQL as")
}

// checkTraversable reports a clear error if some directory above dir cannot
// be searched by cred's user (postgres would fail obscurely).
func checkTraversable(dir string, cred *syscall.Credential) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()
		switch {
		case perm&0o001 != 0:
		case st != nil && st.Uid == cred.Uid && perm&0o100 != 0:
		case st != nil && st.Gid == cred.Gid && perm&0o010 != 0:
		default:
			return fmt.Errorf("pgserver: running as root, PostgreSQL runs as uid %d which cannot enter %s (mode %v); use a directory under /tmp", cred.Uid, d, perm)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func initdb(ctx context.Context, bin, dir, dataDir string, cred *syscall.Credential) error {
	cmd := dbproc.Command(ctx, filepath.Join(bin, "initdb"), dir, cred,
		"-D", dataDir, "-U", superuser, "-A", "trust", "-E", "UTF8", "--locale=C",
		// Skips syncing the initial catalog files only; the server itself
		// runs with fsync on.
		"--no-sync")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgserver: initdb: %w\n%s", err, bytes.TrimSpace(out))
	}
	return nil
}

func (s *Server) cleanupSock() {
	if s.ownsSock {
		_ = os.RemoveAll(s.sockDir)
	}
}

func (s *Server) current() *dbproc.Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Port is the TCP port the server listens on (on 127.0.0.1).
func (s *Server) Port() int { return s.current().Port() }

// LogPath is the server's log file.
func (s *Server) LogPath() string { return s.current().LogPath() }

// Restart shuts the server down (fast shutdown: open sessions are
// disconnected) and starts it again on the same data directory and port,
// so that clients can reconnect with the DSNs they have. ctx bounds the
// start-up. It fails on a server that Stop stopped.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("pgserver: restart of a stopped server")
	}
	if err := s.proc.Stop(syscall.SIGINT, 15*time.Second); err != nil {
		return err
	}
	spec := s.spec
	spec.Port = s.proc.Port()
	p, err := dbproc.Start(ctx, spec)
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

// DSN returns a connection URL for database dbname as the superuser
// "postgres" (trust authentication, no TLS).
func (s *Server) DSN(dbname string) string { return dsn(s.Port(), dbname) }

func dsn(port int, dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

var dbNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func (s *Server) admin(ctx context.Context, stmt string) error {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("pgserver: %s: %w", stmt, err)
	}
	return nil
}

// CreateDB creates an empty database (name: lower-case letters, digits and
// underscores) and returns its DSN.
func (s *Server) CreateDB(ctx context.Context, name string) (string, error) {
	if !dbNameRE.MatchString(name) {
		return "", fmt.Errorf("pgserver: invalid database name %q", name)
	}
	if err := s.admin(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return s.DSN(name), nil
}

// DropDB drops a database, terminating any sessions still connected to it.
// Dropping a database that does not exist is not an error.
func (s *Server) DropDB(ctx context.Context, name string) error {
	if !dbNameRE.MatchString(name) {
		return fmt.Errorf("pgserver: invalid database name %q", name)
	}
	return s.admin(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
}

// Stop shuts the server down (fast shutdown: open sessions are
// disconnected), killing it if it has not exited within 15 seconds. It is
// safe to call more than once. The data directory is left in place.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		defer s.cleanupSock()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.stopped = true
		s.stopErr = s.proc.Stop(syscall.SIGINT, 15*time.Second)
	})
	return s.stopErr
}
