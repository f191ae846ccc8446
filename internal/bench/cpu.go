package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is the CPU time used so far by this process and by the whole
// host, taken at the start and at the end of a measured period.
type cpuSample struct {
	process   time.Duration // user + system time of this process
	hostBusy  uint64        // /proc/stat jiffies not idle or iowait
	hostTotal uint64        // all /proc/stat jiffies
	hostOK    bool
}

// sampleCPU reads the process's rusage and the host's /proc/stat (left
// out, hostOK false, where there is none).
func sampleCPU() cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.process = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		if busy, total, err := parseProcStat(b); err == nil {
			s.hostBusy, s.hostTotal, s.hostOK = busy, total, true
		}
	}
	return s
}

// cpuUse is what happened between two samples.
type cpuUse struct {
	// processMsPerTx is the process's CPU milliseconds per completed
	// transaction (or event).
	processMsPerTx float64
	// processCores is the process's CPU time over the wall time.
	processCores float64
	// hostBusy is the share (0..1) of the host's CPU time that was busy,
	// every process counted; -1 if unknown.
	hostBusy float64
}

func cpuBetween(a, b cpuSample, wall time.Duration, completed int64) cpuUse {
	u := cpuUse{hostBusy: -1}
	cpu := b.process - a.process
	if completed > 0 {
		u.processMsPerTx = float64(cpu.Microseconds()) / 1000 / float64(completed)
	}
	if wall > 0 {
		u.processCores = cpu.Seconds() / wall.Seconds()
	}
	if a.hostOK && b.hostOK && b.hostTotal > a.hostTotal {
		u.hostBusy = float64(b.hostBusy-a.hostBusy) / float64(b.hostTotal-a.hostTotal)
	}
	return u
}

// parseProcStat returns the busy and total jiffies of the aggregate "cpu"
// line of /proc/stat (see proc(5)): user nice system idle iowait irq
// softirq steal [guest guest_nice]. Idle and iowait are not busy; guest
// time is already counted in user and nice, so it is left out of both.
func parseProcStat(b []byte) (busy, total uint64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 5 {
			return 0, 0, fmt.Errorf("/proc/stat: cpu line has %d fields, want at least 4 counters", len(f))
		}
		vals := f[1:min(len(f), 9)] // up to steal
		for i, v := range vals {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/stat: cpu field %d: %w", i+1, err)
			}
			total += n
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
		}
		return busy, total, nil
	}
	return 0, 0, fmt.Errorf("/proc/stat: no aggregate cpu line")
}
