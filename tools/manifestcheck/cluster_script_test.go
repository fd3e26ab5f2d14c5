package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// These tests run scripts/rabbit-cluster.sh against fake rabbitmqctl, rabbitmq-server
// and epmd: they never start a node, and they check that nothing the script runs could
// reach the machine's default broker.

type clusterFake struct {
	dir, sbin, calls, data string
}

func newClusterFake(t *testing.T) *clusterFake {
	t.Helper()
	dir := t.TempDir()
	f := &clusterFake{dir: dir, sbin: filepath.Join(dir, "sbin"), calls: filepath.Join(dir, "calls"), data: filepath.Join(dir, "cluster")}
	require.NoError(t, os.MkdirAll(f.sbin, 0o755))
	script := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(f.sbin, name), []byte("#!/usr/bin/env bash\n"+body+"\n"), 0o755))
	}
	// Each call logs its arguments and the environment that selects a node.
	for _, name := range []string{"rabbitmqctl", "rabbitmq-server", "epmd"} {
		script(name, `echo "`+name+` HOME=$HOME EPMD=$ERL_EPMD_PORT CONF=$RABBITMQ_CONF_ENV_FILE $*" >>"`+f.calls+`"`)
	}
	return f
}

func (f *clusterFake) run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot, "scripts", "rabbit-cluster.sh")}, args...)...)
	cmd.Env = []string{
		"PATH=" + f.sbin + ":/usr/bin:/bin",
		"RABBITMQ_SBIN=" + f.sbin,
		"MTM_CLUSTER_DIR=" + f.data,
		"MTM_CLUSTER_AMQP_BASE=47680", // nothing answers there
		"HOME=" + f.dir,
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func (f *clusterFake) logged(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(f.calls)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(string(raw)), "\n")
}

func TestClusterScriptURLAndUsage(t *testing.T) {
	t.Parallel()
	f := newClusterFake(t)
	out, _, err := f.run(t, "url")
	require.NoError(t, err)
	require.Equal(t, "amqp://guest:guest@127.0.0.1:47681/,amqp://guest:guest@127.0.0.1:47682/,amqp://guest:guest@127.0.0.1:47683/\n", out)

	_, stderr, err := f.run(t)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 2, exit.ExitCode())
	require.Contains(t, stderr, "rabbit-cluster.sh up")

	for _, bad := range []string{"0", "4", "x", ""} {
		_, stderr, err := f.run(t, "kill-node", bad)
		require.Error(t, err, bad)
		require.Contains(t, stderr, "want a node number 1..3")
	}
	require.Empty(t, f.logged(t), "nothing ran")
}

// Every rabbitmqctl call names one of the cluster's nodes and runs with the cluster's
// cookie (HOME), epmd and env file, never the default broker's.
func TestClusterScriptNamesItsNodes(t *testing.T) {
	t.Parallel()
	f := newClusterFake(t)
	_, _, err := f.run(t, "ctl", "2", "-q", "list_queues", "name")
	require.NoError(t, err)
	_, _, err = f.run(t, "status")
	require.NoError(t, err)
	calls := f.logged(t)
	require.Equal(t, []string{
		"rabbitmqctl HOME=" + f.data + " EPMD=4380 CONF=" + f.data + "/rabbitmq-env.conf -n mtm-c2@localhost -q list_queues name",
	}, calls, "status asks no node when none runs")

	// down with nothing running: no stop, only the cluster's own epmd, and the data
	// directory is gone.
	require.NoError(t, os.MkdirAll(filepath.Join(f.data, "n1"), 0o755))
	_, stderr, err := f.run(t, "down")
	require.NoError(t, err, stderr)
	require.NoDirExists(t, f.data)
	calls = f.logged(t)
	require.Equal(t, "epmd HOME="+f.data+" EPMD=4380 CONF="+f.data+"/rabbitmq-env.conf -port 4380 -kill", calls[len(calls)-1])
	for _, c := range calls {
		require.NotContains(t, c, "rabbit@", "never the default node")
		require.NotContains(t, c, "4369", "never the default epmd")
	}
}
