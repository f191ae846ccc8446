package bench

import (
	"os"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	sample := []byte(`cpu  100 5 50 800 40 3 2 0 7 0
cpu0 50 2 25 400 20 1 1 0 0 0
cpu1 50 3 25 400 20 2 1 0 0 0
intr 12345
ctxt 999
`)
	busy, total, err := parseProcStat(sample)
	if err != nil {
		t.Fatal(err)
	}
	// busy: user+nice+system+irq+softirq+steal; total adds idle+iowait;
	// guest (7) is inside user already and not counted twice.
	if busy != 100+5+50+3+2+0 || total != busy+800+40 {
		t.Fatalf("busy %d total %d", busy, total)
	}
	// Old kernels print only user nice system idle.
	busy, total, err = parseProcStat([]byte("cpu 10 0 10 80\n"))
	if err != nil || busy != 20 || total != 100 {
		t.Fatalf("4-field line: busy %d total %d err %v", busy, total, err)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4\n", "cpu 1 2\n", "cpu 1 x 3 4\n"} {
		if _, _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestCPUBetween(t *testing.T) {
	a := cpuSample{process: time.Second, hostBusy: 100, hostTotal: 1000, hostOK: true}
	b := cpuSample{process: 3 * time.Second, hostBusy: 400, hostTotal: 2000, hostOK: true}
	u := cpuBetween(a, b, 4*time.Second, 1000)
	if u.processMsPerTx != 2 || u.processCores != 0.5 || u.hostBusy != 0.3 {
		t.Fatalf("%+v", u)
	}
	b.hostOK = false
	if u := cpuBetween(a, b, time.Second, 0); u.hostBusy != -1 || u.processMsPerTx != 0 {
		t.Fatalf("unknown host or no transactions: %+v", u)
	}
}

func TestSampleCPUAdvances(t *testing.T) {
	a := sampleCPU()
	b := sampleCPU()
	for b.process == a.process { // burn CPU until the process's counter moves
		b = sampleCPU()
	}
	if b.process < a.process {
		t.Fatalf("process CPU went back: %v then %v", a.process, b.process)
	}
	if _, err := os.Stat("/proc/stat"); err == nil && (!b.hostOK || b.hostTotal < a.hostTotal) {
		t.Fatalf("host counters: %+v then %+v", a, b)
	}
}
