package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux this runs on).
const clockTicks = 100

// cpuByName reads the CPU time (user + system, in seconds) every process
// on the machine has used, summed by command name, so that a run can be
// split into what wrk, nginx, the portal, Redis and this tool (the app)
// each cost. Linux only; an empty map elsewhere.
func cpuByName() map[string]float64 {
	out := map[string]float64{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	self := strconv.Itoa(os.Getpid())
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := string(b)
		open, shut := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || shut < open {
			continue
		}
		name := s[open+1 : shut]
		switch pid := strings.Split(f, "/")[2]; {
		case pid == self:
			name = "load tool (app)"
		case pid == nullAuthPID.Load():
			name = "do-nothing auth"
		}
		fields := strings.Fields(s[shut+1:])
		if len(fields) < 13 {
			continue
		}
		utime, _ := strconv.ParseFloat(fields[11], 64)
		stime, _ := strconv.ParseFloat(fields[12], 64)
		out[name] += (utime + stime) / clockTicks
	}
	return out
}

// cpuPerRequest turns two readings of cpuByName around n requests into
// "name µs" pairs, largest first, leaving out processes that used less
// than half a microsecond a request.
func cpuPerRequest(before, after map[string]float64, n float64) string {
	type share struct {
		name string
		us   float64
	}
	var shares []share
	total := 0.0
	for name, t := range after {
		us := (t - before[name]) / n * 1e6
		if us < 0.5 {
			continue
		}
		shares = append(shares, share{name, us})
		total += us
	}
	sort.Slice(shares, func(i, j int) bool { return shares[i].us > shares[j].us })
	parts := []string{fmt.Sprintf("total %.0f µs", total)}
	for _, s := range shares {
		parts = append(parts, fmt.Sprintf("%s %.0f", s.name, s.us))
	}
	return strings.Join(parts, ", ")
}

// pin restricts every thread of process pid to cpus (a taskset list);
// threads and processes it starts later inherit that. An empty cpus
// leaves it alone.
func pin(pid int, cpus string) error {
	if cpus == "" {
		return nil
	}
	if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset -c %s for pid %d: %v\n%s", cpus, pid, err, out)
	}
	return nil
}
