package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// cpuSnapshot is CPU time used so far, in ticks, by the processes a figure depends on:
// the consumer, Postgres (all backends), RabbitMQ (beam.smp), this harness, and the
// whole machine. Deltas over a scenario show where its time went, without a profiler.
type cpuSnapshot struct {
	at                                  time.Time
	consumer, postgres, rabbit, harness int64
	machineBusy, machineTotal           int64
}

func takeCPU(consumerPID int) cpuSnapshot {
	s := cpuSnapshot{at: time.Now()}
	if consumerPID > 0 {
		s.consumer = procTicks(consumerPID)
	}
	s.harness = procTicks(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			continue
		}
		switch strings.TrimSpace(string(comm)) {
		case "postgres":
			s.postgres += procTicks(pid)
		case "beam.smp":
			s.rabbit += procTicks(pid)
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for i := 1; i < len(f); i++ {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			s.machineTotal += v
			if i != 4 && i != 5 { // idle, iowait
				s.machineBusy += v
			}
		}
	}
	return s
}

// procTicks is utime+stime of pid (0 if it is gone).
func procTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// comm may contain spaces: fields start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// addCPU records, as cores used on average over the interval, where CPU went between
// two snapshots. Postgres and RabbitMQ are shared with whatever else runs on the
// machine, so they are upper bounds for this workload.
// msgs > 0 adds CPU microseconds per message for the pipeline's three parts: what
// throughput on a saturated machine comes down to.
func (r *Result) addCPU(from, to cpuSnapshot, msgs int) {
	secs := to.at.Sub(from.at).Seconds()
	if secs <= 0 {
		return
	}
	if msgs > 0 {
		perMsg := func(d int64) float64 { return float64(d) / clockTicks * 1e6 / float64(msgs) }
		if to.consumer > 0 {
			r.add("cpu per msg: consumer", perMsg(to.consumer-from.consumer), "µs")
		} else {
			r.add("cpu per msg: raw consumer (harness)", perMsg(to.harness-from.harness), "µs")
		}
		r.add("cpu per msg: postgres", perMsg(to.postgres-from.postgres), "µs")
		r.add("cpu per msg: rabbitmq", perMsg(to.rabbit-from.rabbit), "µs")
	}
	cores := func(d int64) float64 { return float64(d) / clockTicks / secs }
	if to.consumer > 0 {
		r.add("cpu: consumer", cores(to.consumer-from.consumer), "cores")
	}
	r.add("cpu: postgres (all)", cores(to.postgres-from.postgres), "cores")
	r.add("cpu: rabbitmq", cores(to.rabbit-from.rabbit), "cores")
	r.add("cpu: bench harness", cores(to.harness-from.harness), "cores")
	if total := to.machineTotal - from.machineTotal; total > 0 {
		busy := float64(to.machineBusy-from.machineBusy) / float64(total)
		r.add("cpu: machine busy", 100*busy, "%")
		// Whatever else ran (other tests, the services not under load): noise to
		// keep in mind when reading the figures above.
		ours := cores(to.consumer-from.consumer) + cores(to.postgres-from.postgres) +
			cores(to.rabbit-from.rabbit) + cores(to.harness-from.harness)
		if to.consumer == 0 {
			ours = cores(to.postgres-from.postgres) + cores(to.rabbit-from.rabbit) + cores(to.harness-from.harness)
		}
		r.add("cpu: everything else", max(0, busy*float64(runtime.NumCPU())-ours), "cores")
	}
}
