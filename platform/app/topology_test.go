package app_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/app"
	"github.com/multitenant/mtm/platform/config"
	"github.com/multitenant/mtm/platform/rabbit"
)

// The configuration's defaults are rabbit.DefaultTopology, which tests and tools
// declare with: a service left at its defaults declares the same queues they do.
func TestDefaultQueueTypesAreTheDefaultTopology(t *testing.T) {
	for _, k := range []string{"QUEUE_TYPE", "DLQ_QUEUE_TYPE", "QUEUE_REPLICAS", "CONFIG_FILE"} {
		t.Setenv(k, "")
		require.NoError(t, os.Unsetenv(k))
	}
	var base config.Base
	require.NoError(t, config.Load(&base, &base, ":8080"))
	got, err := app.TopologyOf(&base)
	require.NoError(t, err)
	require.Equal(t, rabbit.DefaultTopology, got)
}

func TestTopologyOfNamesTheVariable(t *testing.T) {
	_, err := app.TopologyOf(&config.Base{QueueType: "classic", DLQQueueType: "stream"})
	require.ErrorContains(t, err, "DLQ_QUEUE_TYPE")
	got, err := app.TopologyOf(&config.Base{QueueType: "classic", DLQQueueType: "quorum"})
	require.NoError(t, err)
	require.Equal(t, rabbit.Topology{Queue: rabbit.Classic, DLQ: rabbit.Quorum}, got)
	got, err = app.TopologyOf(&config.Base{QueueType: "quorum", DLQQueueType: "classic", QueueReplicas: 3})
	require.NoError(t, err)
	require.Equal(t, rabbit.Topology{Queue: rabbit.Quorum, DLQ: rabbit.Classic, Replicas: 3}, got, "QUEUE_REPLICAS reaches the topology both services declare with")
	_, err = app.TopologyOf(&config.Base{QueueType: "quorum", DLQQueueType: "classic", QueueReplicas: 9})
	require.ErrorContains(t, err, "QUEUE_REPLICAS")
}
