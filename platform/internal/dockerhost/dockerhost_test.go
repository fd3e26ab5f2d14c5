package dockerhost

import (
	"testing"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"
)

func TestHostPort(t *testing.T) {
	res := &dockertest.Resource{Container: &dc.Container{NetworkSettings: &dc.NetworkSettings{
		Ports: map[dc.Port][]dc.PortBinding{"5432/tcp": {{HostIP: "0.0.0.0", HostPort: "49153"}}},
	}}}
	cases := map[string]string{
		"":                            "localhost:49153",
		"unix:///var/run/docker.sock": "localhost:49153",
		"tcp://docker:2376":           "docker:49153",
		"tcp://dind.example:2375":     "dind.example:49153",
	}
	for dockerHost, want := range cases {
		t.Setenv("DOCKER_HOST", dockerHost)
		if got := HostPort(res, "5432/tcp"); got != want {
			t.Errorf("DOCKER_HOST=%q: got %s, want %s", dockerHost, got, want)
		}
	}
}
