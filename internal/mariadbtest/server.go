package mariadbtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/dtxhq/dtx/internal/dbproc"
)

// ErrNotInstalled is returned (wrapped) by StartServer when no MariaDB
// binaries can be found.
var ErrNotInstalled = errors.New("mariadbtest: MariaDB binaries (mariadbd, mariadb-install-db) not found")

// EnvBinDir names a directory holding mariadbd and mariadb-install-db (or
// mysqld and mysql_install_db); it overrides the search of PATH and the
// usual install locations.
const EnvBinDir = "DTX_MARIADB_BIN"

// Server is a running MariaDB server started by StartServer. Its methods are
// safe for concurrent use.
type Server struct {
	dataDir  string
	sockPath string
	sockDir  string // created outside dir (short path); removed by Stop
	proc     *dbproc.Proc
	admin    *sql.DB

	stopOnce sync.Once
	stopErr  error
}

// binaries are the programs StartServer runs.
type binaries struct {
	server, installDB string
}

// StartServer initialises a new data directory in dir/data (dir is created
// if missing) and starts mariadbd on 127.0.0.1 with a free port, its socket
// in a private directory, innodb_flush_log_at_trx_commit=1 and
// max_connections=300. The server is killed if the calling process dies;
// call Stop to shut it down cleanly. ctx bounds the start-up only.
//
// As root, the server runs as root (--user=root).
func StartServer(ctx context.Context, dir string) (*Server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("mariadbtest: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mariadbtest: %w", err)
	}
	s := &Server{
		dataDir:  filepath.Join(dir, "data"),
		sockPath: filepath.Join(dir, "mysqld.sock"),
	}
	// Unix socket paths are limited to ~107 bytes.
	if len(s.sockPath) > 100 {
		d, err := os.MkdirTemp("/tmp", "dtxmy-")
		if err != nil {
			return nil, fmt.Errorf("mariadbtest: %w", err)
		}
		s.sockDir, s.sockPath = d, filepath.Join(d, "mysqld.sock")
	}
	if err := installDB(ctx, bin, dir, s.dataDir); err != nil {
		s.cleanupSock()
		return nil, err
	}
	s.proc, err = dbproc.Start(ctx, dbproc.Spec{
		Prefix:  "mariadbtest",
		Name:    "mariadbd",
		LogPath: filepath.Join(dir, "mariadbd.log"), // no --log-error: errors go to stderr
		Command: func(port int) *exec.Cmd {
			// Not CommandContext: ctx bounds start-up, not the server's life.
			return dbproc.Command(nil, bin.server, dir, nil, s.serverArgs(dir, port)...)
		},
		Ready: func(ctx context.Context, port int) error {
			db, err := sql.Open("mysql", dsn(port, ""))
			if err != nil {
				return err
			}
			defer db.Close()
			return db.PingContext(ctx)
		},
	})
	if err != nil {
		s.cleanupSock()
		return nil, err
	}
	s.admin, err = sql.Open("mysql", s.DSN(""))
	if err != nil {
		s.proc.Kill()
		s.cleanupSock()
		return nil, fmt.Errorf("mariadbtest: %w", err)
	}
	s.admin.SetMaxOpenConns(4)
	s.admin.SetConnMaxIdleTime(time.Minute)
	return s, nil
}

// findBinaries locates mariadbd and mariadb-install-db.
func findBinaries() (binaries, error) {
	exe := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
	}
	find := func(dirs []string, names ...string) string {
		for _, name := range names {
			if len(dirs) == 0 {
				if p, err := exec.LookPath(name); err == nil {
					return p
				}
				continue
			}
			for _, d := range dirs {
				if p := filepath.Join(d, name); exe(p) {
					return p
				}
			}
		}
		return ""
	}
	servers := []string{"mariadbd", "mysqld"}
	installers := []string{"mariadb-install-db", "mysql_install_db"}
	if d := os.Getenv(EnvBinDir); d != "" {
		b := binaries{server: find([]string{d}, servers...), installDB: find([]string{d}, installers...)}
		if b.server == "" || b.installDB == "" {
			return binaries{}, fmt.Errorf("%w in %s=%s", ErrNotInstalled, EnvBinDir, d)
		}
		return b, nil
	}
	std := []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/local/mysql/bin", "/usr/local/mysql/scripts"}
	b := binaries{server: find(nil, servers...), installDB: find(nil, installers...)}
	if b.server == "" {
		b.server = find(std, servers...)
	}
	if b.installDB == "" {
		b.installDB = find(std, installers...)
	}
	if b.server == "" || b.installDB == "" {
		return binaries{}, fmt.Errorf("%w (looked at $%s, PATH, %s; on Debian: apt-get install mariadb-server)",
			ErrNotInstalled, EnvBinDir, strings.Join(std, ", "))
	}
	return b, nil
}

// userArgs makes mariadbd (which refuses to run as root unless told to) run
// as root when we are root.
func userArgs() []string {
	if os.Geteuid() == 0 {
		return []string{"--user=root"}
	}
	return nil
}

func installDB(ctx context.Context, bin binaries, dir, dataDir string) error {
	// --no-defaults must come first: the system's my.cnf (socket, datadir,
	// bind address of an installed service) must not leak in.
	args := append([]string{"--no-defaults",
		"--datadir=" + dataDir,
		// root@localhost, root@127.0.0.1 and root@::1 with an empty
		// password (the default would be unix_socket authentication).
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
	}, userArgs()...)
	out, err := dbproc.Command(ctx, bin.installDB, dir, nil, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mariadbtest: %s: %w\n%s", filepath.Base(bin.installDB), err, bytes.TrimSpace(out))
	}
	return nil
}

// serverArgs are mariadbd's arguments for listening on port.
func (s *Server) serverArgs(dir string, port int) []string {
	return append([]string{"--no-defaults",
		"--datadir=" + s.dataDir,
		"--bind-address=127.0.0.1",
		"--port=" + strconv.Itoa(port),
		"--socket=" + s.sockPath,
		"--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
		"--tmpdir=" + dir,
		"--skip-name-resolve",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
		"--max-connections=300",
		// Durable commits, as in production (the default, made explicit).
		"--innodb-flush-log-at-trx-commit=1",
		"--innodb-buffer-pool-size=128M",
		// Containers often forbid or limit io_setup/io_uring.
		"--innodb-use-native-aio=0",
		"--skip-log-bin",
		"--performance-schema=OFF",
	}, userArgs()...)
}

func (s *Server) cleanupSock() {
	if s.sockDir != "" {
		_ = os.RemoveAll(s.sockDir)
	}
}

// Port is the TCP port the server listens on (on 127.0.0.1).
func (s *Server) Port() int { return s.proc.Port() }

// LogPath is the server's log file.
func (s *Server) LogPath() string { return s.proc.LogPath() }

// DSN returns the go-sql-driver/mysql DSN of database dbname ("" for none)
// as root (no password, no TLS), with clientFoundRows (UPDATE reports
// matched rows, which the store's lease fence relies on) and
// multiStatements (migrations are multi-statement scripts).
func (s *Server) DSN(dbname string) string { return dsn(s.Port(), dbname) }

func dsn(port int, dbname string) string {
	c := mysql.NewConfig()
	c.User = "root"
	c.Net = "tcp"
	c.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c.DBName = dbname
	c.ClientFoundRows = true
	c.MultiStatements = true
	c.ParseTime = false
	return c.FormatDSN()
}

var dbNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CreateDB creates an empty database (name: lower-case letters, digits and
// underscores; utf8mb4) and returns its DSN.
func (s *Server) CreateDB(ctx context.Context, name string) (string, error) {
	if !dbNameRE.MatchString(name) {
		return "", fmt.Errorf("mariadbtest: invalid database name %q", name)
	}
	if _, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4"); err != nil {
		return "", fmt.Errorf("mariadbtest: create database %s: %w", name, err)
	}
	return s.DSN(name), nil
}

// DropDB drops a database, first killing any sessions still using it (an
// open transaction would otherwise block DROP DATABASE on its metadata
// locks). Dropping a database that does not exist is not an error.
func (s *Server) DropDB(ctx context.Context, name string) error {
	if !dbNameRE.MatchString(name) {
		return fmt.Errorf("mariadbtest: invalid database name %q", name)
	}
	rows, err := s.admin.QueryContext(ctx, "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()", name)
	if err != nil {
		return fmt.Errorf("mariadbtest: list sessions of %s: %w", name, err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("mariadbtest: list sessions of %s: %w", name, err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		// The session may have ended meanwhile (unknown thread id).
		_, _ = s.admin.ExecContext(ctx, "KILL "+strconv.FormatInt(id, 10))
	}
	if _, err := s.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
		return fmt.Errorf("mariadbtest: drop database %s: %w", name, err)
	}
	return nil
}

// Stop shuts the server down (SIGTERM: open sessions are disconnected),
// killing it if it has not exited within 30 seconds. It is safe to call more
// than once. The data directory is left in place.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		defer s.cleanupSock()
		if s.admin != nil {
			s.admin.Close()
		}
		s.stopErr = s.proc.Stop(syscall.SIGTERM, 30*time.Second)
	})
	return s.stopErr
}
