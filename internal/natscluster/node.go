package natscluster

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/dtxhq/dtx/internal/atomicfile"
)

// envNode names the node spec file of a process started as a node.
const envNode = "DTX_NATSCLUSTER_NODE"

// nodeSpec is what a node process runs: written by Start and Restart as
// JSON, read by Main in the child.
type nodeSpec struct {
	Name        string   `json:"name"`
	Cluster     string   `json:"cluster"`
	StoreDir    string   `json:"store_dir"`
	ClientPort  int      `json:"client_port"`  // -1: the kernel picks
	HTTPPort    int      `json:"http_port"`    // -1: the kernel picks
	ClusterPort int      `json:"cluster_port"` // always a known port: the others route to it
	Routes      []string `json:"routes"`       // nats-route://127.0.0.1:port of every node; none: a single server, not clustered
	Ready       string   `json:"ready"`
	SyncAlways  bool     `json:"sync_always"`
}

// readyInfo is the ready file a node writes once it listens.
type readyInfo struct {
	PID         int `json:"pid"`
	ClientPort  int `json:"client_port"`
	HTTPPort    int `json:"http_port"`
	ClusterPort int `json:"cluster_port"`
}

// Main runs a cluster node and exits if this process was started as one
// by Start or Restart; otherwise it returns at once. A binary that serves
// as Config.Exe calls it first thing in main (the dtx binary does), and a
// test binary in TestMain.
func Main() {
	path := os.Getenv(envNode)
	if path == "" {
		return
	}
	if err := runNode(path); err != nil {
		fmt.Fprintf(os.Stderr, "natscluster node: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runNode runs the node of the spec at path until SIGTERM or SIGINT.
func runNode(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec nodeSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("spec %s: %w", path, err)
	}
	opts := &server.Options{
		ServerName: spec.Name,
		Host:       "127.0.0.1",
		Port:       spec.ClientPort,
		HTTPHost:   "127.0.0.1",
		HTTPPort:   spec.HTTPPort,
		JetStream:  true,
		StoreDir:   spec.StoreDir,
		SyncAlways: spec.SyncAlways,
		NoSigs:     true,
		Logtime:    true,
	}
	if len(spec.Routes) > 0 {
		opts.Cluster = server.ClusterOpts{
			Name: spec.Cluster,
			Host: "127.0.0.1",
			Port: spec.ClusterPort,
			// Keep soliciting a route to a node that is down, however
			// long: it comes back on the same port.
			ConnectRetries: 0,
		}
	}
	for _, r := range spec.Routes {
		u, err := url.Parse(r)
		if err != nil {
			return fmt.Errorf("route %q: %w", r, err)
		}
		opts.Routes = append(opts.Routes, u)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return err
	}
	// Logs go to stderr, which Start sends to the node's log file; a port
	// already taken is a fatal log line and exit status 1.
	srv.ConfigureLogger()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	srv.Start()
	if !srv.ReadyForConnections(time.Minute) {
		srv.Shutdown()
		return fmt.Errorf("%s not ready for connections within a minute", spec.Name)
	}
	info := readyInfo{PID: os.Getpid(), ClientPort: port(srv.ClientURL())}
	if a := srv.MonitorAddr(); a != nil {
		info.HTTPPort = a.Port
	}
	if a := srv.ClusterAddr(); a != nil {
		info.ClusterPort = a.Port
	}
	rb, _ := json.Marshal(info)
	if err := atomicfile.Write(spec.Ready, string(rb)); err != nil {
		srv.Shutdown()
		return err
	}
	<-stop
	srv.Shutdown()
	srv.WaitForShutdown()
	return nil
}

// port is the port of a URL such as nats://127.0.0.1:4222, or 0.
func port(u string) int {
	p, err := url.Parse(u)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p.Port())
	return n
}
