package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// These tests run scripts/deps.sh against fake commands and a fake /proc: they never
// touch the machine's broker or database (which other people's tests may be using).

// fakeEnv is a PATH of fake commands that log their calls, a fake /proc with one
// broker process whose soft file limit is nofile, and the fake broker start script.
type fakeEnv struct {
	dir, calls string
	env        []string
}

func newFakeEnv(t *testing.T, nofile string, uid string) *fakeEnv {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "proc", "4242"), 0o755))
	require.NoError(t, os.MkdirAll(bin, 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "home"), 0o755))
	limits := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max open files            " + nofile + "                 1048576              files     \n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "proc", "4242", "limits"), []byte(limits), 0o644))
	calls := filepath.Join(dir, "calls")
	script := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte("#!/usr/bin/env bash\n"+body+"\n"), 0o755))
	}
	// Every command that could stop, restart or signal a server logs its call.
	for _, name := range []string{"rabbitmqctl", "kill", "pkill", "killall", "systemctl", "service", "pg_ctlcluster", "docker", "rabbitmq-plugins"} {
		script(name, `echo "`+name+` $*" >>"`+calls+`"; exit 1`)
	}
	script("pgrep", `echo 4242`)
	script("id", `if [ "$1" = -u ] && [ $# = 1 ]; then echo `+uid+`; else exec /usr/bin/id "$@"; fi`)
	// setpriv and the broker's start script record the soft limit they were run with.
	script("setpriv", `echo "setpriv nofile=$(ulimit -Sn) HOME=$HOME PWD=$PWD $*" >>"`+calls+`"`)
	script("rabbitmq-server", `echo "rabbitmq-server nofile=$(ulimit -Sn) $*" >>"`+calls+`"`)
	return &fakeEnv{dir: dir, calls: calls, env: []string{
		"PATH=" + bin + ":/usr/bin:/bin",
		"PROC_DIR=" + filepath.Join(dir, "proc"),
		"MQ_HOME=" + filepath.Join(dir, "home"),
		"MQ_SERVER=" + filepath.Join(bin, "rabbitmq-server"),
		"MQ_HANDSHAKE_TIMEOUT=1",
	}}
}

// run runs bash with the fake environment plus extra variables; it returns stdout,
// stderr and the exit error.
func (f *fakeEnv) run(t *testing.T, script string, extra ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command("bash", "-c", script)
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	cmd.Dir = root
	cmd.Env = append(append([]string{}, f.env...), extra...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func (f *fakeEnv) logged(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(f.calls)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	require.NoError(t, err)
	return string(b)
}

func TestDepsSizing(t *testing.T) {
	f := newFakeEnv(t, "1024", "0")
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "3 3476"}, // the defaults: quorum queue, classic DLQ, 1000 tenants
		{[]string{"DLQ_QUEUE_TYPE=quorum"}, "6 6809"},
		{[]string{"QUEUE_TYPE=classic", "DLQ_QUEUE_TYPE=classic"}, "0 143"},
		{[]string{"MAX_TENANTS=5000"}, "3 16809"},
	} {
		out, _, err := f.run(t, `source scripts/deps.sh; echo "$(handles_per_tenant) $(required_nofile)"`, tc.env...)
		require.NoError(t, err)
		require.Equal(t, tc.want, strings.TrimSpace(out), tc.env)
	}
	for _, tc := range []struct{ hard, root, want string }{
		{"unlimited", "no", "65536"},
		{"20000", "yes", "65536"}, // root raises the hard limit
		{"20000", "no", "20000"},  // others get what the hard limit allows
		{"1048576", "no", "1048576"},
		{"1048576", "yes", "1048576"},
	} {
		out, _, err := f.run(t, `source scripts/deps.sh; choose_nofile `+tc.hard+` `+tc.root)
		require.NoError(t, err)
		require.Equal(t, tc.want, strings.TrimSpace(out), tc)
	}
}

// A running broker whose limit is too low is reported with the fix; nothing is stopped.
func TestDepsReportsLowLimitWithoutRestarting(t *testing.T) {
	low := newFakeEnv(t, "1024", "0")
	out, errOut, err := low.run(t, `source scripts/deps.sh; check_broker_limit`)
	require.NoError(t, err, "a report, not a failure")
	require.Empty(t, out)
	require.Contains(t, errOut, "file limit of 1024, too low for MAX_TENANTS=1000")
	require.Contains(t, errOut, "about 264 tenants")
	require.Contains(t, errOut, "setpriv")
	require.Contains(t, errOut, "LimitNOFILE=")
	require.Empty(t, low.logged(t), "nothing was stopped or restarted")

	out, _, err = low.run(t, `source scripts/deps.sh; check_broker_limit`, "MAX_TENANTS=100")
	require.NoError(t, err)
	require.Contains(t, out, "RabbitMQ file limit 1024 (enough for MAX_TENANTS=100")

	high := newFakeEnv(t, "65536", "0")
	out, errOut, err = high.run(t, `source scripts/deps.sh; check_broker_limit`)
	require.NoError(t, err)
	require.Contains(t, out, "RabbitMQ file limit 65536 (enough")
	require.Empty(t, errOut)
}

// As root the broker is started through setpriv as its own user (su would reset the
// limit), from its home, with the chosen limit, and the limit is printed.
func TestDepsStartsBrokerWithLargeLimit(t *testing.T) {
	f := newFakeEnv(t, "65536", "0")
	// 65536 or more, unless this root may not raise its hard limit (a container
	// without CAP_SYS_RESOURCE): then the hard limit.
	want, _, err := f.run(t, `source scripts/deps.sh; n=$(choose_nofile "$(ulimit -Hn)" yes); (ulimit -Hn "$n") 2>/dev/null || n=$(ulimit -Hn); echo "$n"`)
	require.NoError(t, err)
	want = strings.TrimSpace(want)
	out, _, err := f.run(t, `source scripts/deps.sh; start_local_rabbitmq`)
	require.NoError(t, err)
	require.Contains(t, out, "with a file limit of "+want+"\n", "the limit printed is the one the broker got")
	line := strings.TrimSpace(f.logged(t))
	require.True(t, strings.HasPrefix(line, "setpriv nofile="+want+" "), line)
	require.Contains(t, line, "HOME="+filepath.Join(f.dir, "home")+" PWD="+filepath.Join(f.dir, "home"))
	require.Contains(t, line, "--reuid=rabbitmq --regid=rabbitmq --init-groups "+filepath.Join(f.dir, "bin", "rabbitmq-server")+" -detached")

	// Not root: no user switch, the limit the hard limit allows.
	user := newFakeEnv(t, "65536", "1000")
	want, _, err = user.run(t, `source scripts/deps.sh; choose_nofile "$(ulimit -Hn)" no`)
	require.NoError(t, err)
	want = strings.TrimSpace(want)
	_, _, err = user.run(t, `source scripts/deps.sh; start_local_rabbitmq`)
	require.NoError(t, err)
	require.Equal(t, "rabbitmq-server nofile="+want+" -detached", strings.TrimSpace(user.logged(t)))
}

// A broker that accepts TCP but never answers the AMQP handshake makes the script fail
// with a diagnosis; it is not restarted or killed.
func TestDepsNeverRestartsAWedgedBroker(t *testing.T) {
	pg := acceptor(t)
	mq := acceptor(t)
	f := newFakeEnv(t, "1024", "0")
	_, errOut, err := f.run(t, `scripts/deps.sh`,
		"PG_HOST=127.0.0.1", "PG_PORT="+port(pg), "MQ_HOST=127.0.0.1", "MQ_PORT="+port(mq), "MQ_MGMT_PORT=1")
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 1, exit.ExitCode())
	require.Contains(t, errOut, "does not answer the AMQP handshake")
	require.Contains(t, errOut, "does not restart it")
	require.Contains(t, errOut, "file limit of 1024, too low")
	require.Empty(t, f.logged(t), "no server was stopped, restarted or signalled")
}

// acceptor listens on a free port, accepts and holds connections without answering,
// until the test ends.
func acceptor(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by the test: ends when the listener closes
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln
}

func port(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}
