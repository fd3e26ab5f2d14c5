package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// service is one product binary under test, started and stopped by the harness.
type service struct {
	name    string
	path    string
	port    int
	env     []string
	logPath string
	log     *slog.Logger

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// services are the three binaries, all on the bench database and fixed bench ports.
type services struct {
	opt                      options
	command, consumer, query *service
	// replicas are the consumer processes the replicas scenario runs next to consumer
	// (replica 2, 3, …): each on its own port and log, started only by that scenario.
	replicas []*service
	env      []string // every service's environment but HTTP_ADDR
	log      *slog.Logger
}

func newServices(o options, log *slog.Logger) *services {
	base := []string{
		"DATABASE_URL=" + o.databaseURL,
		"RABBITMQ_URL=" + o.rabbitURL,
		"LOG_LEVEL=" + o.logLevel,
		"LOG_FORMAT=text",
		"WORKERS=" + fmt.Sprint(o.workers),
		// The scenarios create well over the default 1024 workers in one database
		// (scale alone: 1,000 tenants) and never delete them.
		"MAX_TOTAL_WORKERS=1000000",
		"MAX_TENANTS=1000000",
		"SHUTDOWN_TIMEOUT=30s",
		"CURSOR_SECRET=bench-cursor-secret-0123456789abcdef",
	}
	// The services read their configuration from the environment only: drop anything
	// of the caller's that would change what is measured (JWT_SECRET turns auth on).
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		// METRICS_ADDR would move /metrics off the HTTP port, where the harness reads
		// it, and make consumer replicas on one host collide on one listener.
		case "DATABASE_URL", "RABBITMQ_URL", "HTTP_ADDR", "METRICS_ADDR", "LOG_LEVEL", "LOG_FORMAT", "WORKERS",
			"JWT_SECRET", "CONFIG_FILE", "SHUTDOWN_TIMEOUT", "CURSOR_SECRET", "MAX_TOTAL_WORKERS", "MAX_TENANTS":
			continue
		}
		env = append(env, kv)
	}
	s := &services{opt: o, log: log, env: append(env, base...)}
	s.command = s.newService("command", "command", o.commandPort)
	s.consumer = s.newService("consumer", "consumer", o.consumerPort)
	s.query = s.newService("query", "query", o.queryPort)
	return s
}

// newService is binary bin/<binary> as name, listening on port, logging to <name>.log.
func (s *services) newService(name, binary string, port int) *service {
	return &service{
		name: name, path: filepath.Join(s.opt.bin, binary), port: port,
		env:     append(append([]string(nil), s.env...), fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", port)),
		logPath: filepath.Join(s.opt.logDir, name+".log"),
		log:     s.log,
	}
}

func (s *services) all() []*service { return []*service{s.command, s.consumer, s.query} }

// replicaPort is consumer replica i's port (i ≥ 1; replica 1 is the consumer itself):
// -consumer-port, then +100, +200, … so the replicas stay clear of the other services.
func replicaPort(consumerPort, i int) int { return consumerPort + 100*(i-1) }

// consumers returns n consumer processes: the consumer, then replicas consumer-2,
// consumer-3, … (created on first use, their logs emptied then). None is started.
func (s *services) consumers(n int) []*service {
	for len(s.replicas) < n-1 {
		i := len(s.replicas) + 2
		sv := s.newService(fmt.Sprintf("consumer-%d", i), "consumer", replicaPort(s.opt.consumerPort, i))
		_ = os.Remove(sv.logPath) // each run's logs start empty
		s.replicas = append(s.replicas, sv)
	}
	return append([]*service{s.consumer}, s.replicas[:n-1]...)
}

// ensure starts whichever of the three is not running and waits until all are ready.
// A binary that is missing or never gets ready makes the caller's scenario unavailable.
func (s *services) ensure(ctx context.Context) error {
	for _, sv := range s.all() {
		if sv.running() {
			continue
		}
		if err := sv.start(); err != nil {
			return err
		}
	}
	for _, sv := range s.all() {
		if err := sv.waitReady(ctx, 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

func (s *services) stopAll(ctx context.Context) {
	if err := stopServices(ctx, append(s.all(), s.replicas...), s.opt.serviceStopWait); err != nil {
		s.log.Warn("stop services", "err", err)
	}
}

// stopServices stops svs in parallel (SIGTERM, SIGKILL after wait) and returns their
// errors joined.
func stopServices(ctx context.Context, svs []*service, wait time.Duration) error {
	errs := make([]error, len(svs))
	var wg sync.WaitGroup
	for i, sv := range svs {
		wg.Go(func() { errs[i] = sv.stop(ctx, wait) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (sv *service) running() bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.cmd == nil {
		return false
	}
	select {
	case <-sv.done:
		return false
	default:
		return true
	}
}

func (sv *service) pid() int {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.cmd == nil || sv.cmd.Process == nil {
		return 0
	}
	return sv.cmd.Process.Pid
}

func (sv *service) start() error {
	if _, err := os.Stat(sv.path); err != nil {
		return unavailable("%s not found (run make build): %v", sv.path, err)
	}
	if err := os.MkdirAll(filepath.Dir(sv.logPath), 0o755); err != nil {
		return fmt.Errorf("create log dir: %w", err)
	}
	logf, err := os.OpenFile(sv.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", sv.logPath, err)
	}
	fmt.Fprintf(logf, "\n=== bench: starting %s at %s ===\n", sv.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(sv.path)
	cmd.Env, cmd.Stdout, cmd.Stderr = sv.env, logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return unavailable("start %s: %v", sv.name, err)
	}
	done := make(chan struct{})
	sv.mu.Lock()
	sv.cmd, sv.done = cmd, done
	sv.mu.Unlock()
	// The waiter owns the process: it reaps it and closes its log.
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
	return nil
}

// waitReady polls /readyz until it answers 200, the process exits, or timeout.
func (sv *service) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := fmt.Sprintf("http://127.0.0.1:%d/readyz", sv.port)
	client := &http.Client{Timeout: time.Second}
	for {
		sv.mu.Lock()
		done := sv.done
		sv.mu.Unlock()
		select {
		case <-done:
			return unavailable("%s exited before it got ready: %s", sv.name, sv.logTail())
		default:
		}
		if resp, err := client.Get(u); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return unavailable("%s not ready on %s after %s", sv.name, u, timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM (the graceful path the product promises) and SIGKILLs after wait.
func (sv *service) stop(ctx context.Context, wait time.Duration) error {
	sv.mu.Lock()
	cmd, done := sv.cmd, sv.done
	sv.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", sv.name, err)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", sv.name, wait)
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited %d after SIGTERM", sv.name, code)
	}
	return nil
}

// logTail is the end of the service's log, for "why did it not start" reasons.
func (sv *service) logTail() string {
	b, err := os.ReadFile(sv.logPath)
	if err != nil {
		return ""
	}
	if i := bytes.LastIndex(b, []byte("=== bench: starting")); i >= 0 {
		b = b[i:]
		if j := bytes.IndexByte(b, '\n'); j >= 0 {
			b = b[j+1:]
		}
	}
	if len(b) > 400 {
		b = b[len(b)-400:]
	}
	return strings.TrimSpace(string(b))
}

// rssMiB reads VmRSS of pid from /proc.
func rssMiB(pid int) (float64, error) {
	v := procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS")
	var kb float64
	if _, err := fmt.Sscanf(v, "%f", &kb); err != nil {
		return 0, fmt.Errorf("read VmRSS of %d: %q: %w", pid, v, err)
	}
	return kb / 1024, nil
}

func replaceDBName(raw, from, to string) string {
	u, err := url.Parse(raw)
	if err != nil || strings.TrimPrefix(u.Path, "/") != from {
		return raw
	}
	u.Path = "/" + to
	return u.String()
}
