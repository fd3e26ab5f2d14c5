package main

import (
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
)

// clusterProfile is the compose profile that adds a RabbitMQ cluster, and clusterEnv
// the env file (`docker compose --env-file`) that points the services at its nodes.
const (
	clusterProfile = "cluster"
	clusterEnv     = "deployments/rabbitmq/cluster.env"
)

// topologyVars are what command and consumer both declare tenant queues with: they must
// agree, or the broker refuses one service's declare.
var topologyVars = []string{"QUEUE_TYPE", "DLQ_QUEUE_TYPE", "QUEUE_REPLICAS"}

var classicNode = regexp.MustCompile(`(?m)^\s*cluster_formation\.classic_config\.nodes\.\d+\s*=\s*(\S+)\s*$`)

// checkCluster checks the cluster profile: at least three RabbitMQ nodes of the single
// broker's image, each with its own hostname (its node name) and data volume, a shared
// Erlang cookie, the broker's file limit, a healthcheck and a mounted configuration whose
// classic peer discovery lists exactly those nodes. Loaded with clusterEnv, the services
// reach every node and only those, with quorum queues replicated on at most that many
// nodes, and the management API on one of them. Command and consumer always get the
// same queue settings.
func checkCluster(where, abs, path string, proj *types.Project, p *problems) {
	sameTopology(where, "", proj, p)
	var nodes []string
	for _, name := range slices.Sorted(maps.Keys(proj.Services)) {
		if slices.Contains(proj.Services[name].Profiles, clusterProfile) {
			nodes = append(nodes, name)
		}
	}
	if len(nodes) < 3 {
		p.addf("%s: the %q profile has %d RabbitMQ nodes, want at least 3 (a quorum survives one node's loss)", where, clusterProfile, len(nodes))
		return
	}
	single := proj.Services["rabbitmq"]
	cookie, hostnames, volumes := "", map[string]string{}, map[string]string{}
	for i, name := range nodes {
		s := proj.Services[name]
		co := where + ": " + name
		if len(s.Profiles) != 1 {
			p.addf("%s: must be in the %q profile alone, got %v", co, clusterProfile, s.Profiles)
		}
		if s.Image != single.Image {
			p.addf("%s: image %q differs from rabbitmq's %q (one RabbitMQ version)", co, s.Image, single.Image)
		}
		if s.Hostname == "" {
			p.addf("%s: needs a hostname (the node name rabbit@<hostname> must not change between runs)", co)
		} else if other, ok := hostnames[s.Hostname]; ok {
			p.addf("%s: hostname %q is %s's too", co, s.Hostname, other)
		} else {
			hostnames[s.Hostname] = name
		}
		c := ""
		if v := s.Environment["RABBITMQ_ERLANG_COOKIE"]; v != nil {
			c = *v
		}
		switch {
		case c == "":
			p.addf("%s: RABBITMQ_ERLANG_COOKIE must be set (the nodes authenticate each other with it)", co)
		case i == 0:
			cookie = c
		case c != cookie:
			p.addf("%s: RABBITMQ_ERLANG_COOKIE differs from %s's: the nodes cannot cluster", co, nodes[0])
		}
		if u := s.Ulimits["nofile"]; u == nil || min(u.Soft, u.Hard) < minBrokerNofile && u.Single < minBrokerNofile {
			p.addf("%s: needs ulimits.nofile of at least %d (about 3 file handles a quorum queue replica)", co, minBrokerNofile)
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
			p.addf("%s: needs a healthcheck", co)
		}
		if !mountsEnabledPlugins(abs, s) {
			p.addf("%s: must mount an enabled_plugins file with rabbitmq_prometheus at /etc/rabbitmq/enabled_plugins", co)
		}
		data := slices.IndexFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == "/var/lib/rabbitmq" })
		switch {
		case data < 0 || s.Volumes[data].Type != types.VolumeTypeVolume:
			p.addf("%s: needs a named volume at /var/lib/rabbitmq (its node's data)", co)
		case volumes[s.Volumes[data].Source] != "":
			p.addf("%s: shares volume %s with %s: each node needs its own data", co, s.Volumes[data].Source, volumes[s.Volumes[data].Source])
		default:
			volumes[s.Volumes[data].Source] = name
		}
	}
	for _, name := range nodes {
		checkPeerDiscovery(where+": "+name, abs, proj.Services[name], hostnames, p)
	}
	checkClusterEnv(where, abs, path, hostnames, p)
}

// checkPeerDiscovery requires node s to mount a RabbitMQ configuration that forms the
// cluster by classic peer discovery over exactly the profile's nodes.
func checkPeerDiscovery(co, abs string, s types.ServiceConfig, hostnames map[string]string, p *problems) {
	var conf []byte
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && (v.Target == "/etc/rabbitmq/rabbitmq.conf" || strings.HasPrefix(v.Target, "/etc/rabbitmq/conf.d/")) {
			if raw, err := os.ReadFile(v.Source); err == nil && strings.Contains(string(raw), "cluster_formation") {
				conf = raw
			}
		}
	}
	if conf == nil {
		p.addf("%s: must mount a rabbitmq.conf with cluster_formation settings at /etc/rabbitmq/rabbitmq.conf or in /etc/rabbitmq/conf.d/", co)
		return
	}
	if !regexp.MustCompile(`(?m)^\s*cluster_formation\.peer_discovery_backend\s*=\s*(classic_config|rabbit_peer_discovery_classic_config)\s*$`).Match(conf) {
		p.addf("%s: its rabbitmq.conf must set cluster_formation.peer_discovery_backend = classic_config", co)
	}
	var listed []string
	for _, m := range classicNode.FindAllSubmatch(conf, -1) {
		listed = append(listed, string(m[1]))
	}
	var want []string
	for h := range hostnames {
		want = append(want, "rabbit@"+h)
	}
	slices.Sort(listed)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		p.addf("%s: classic_config lists %v, want the profile's nodes %v", co, listed, want)
	}
}

// checkClusterEnv loads the compose file with clusterEnv as docker compose --env-file
// does and checks where it points the services.
func checkClusterEnv(where, abs, path string, hostnames map[string]string, p *problems) {
	envFile := filepath.Join(abs, clusterEnv)
	vars, err := dotenv.Read(envFile)
	if err != nil {
		p.addf("%s: %v", clusterEnv, err)
		return
	}
	proj, err := loadCompose(abs, path, vars)
	if err != nil {
		p.addf("%s: with %s: %v", where, clusterEnv, err)
		return
	}
	with := " with " + clusterEnv
	sameTopology(where, with, proj, p)
	for _, want := range services {
		s, ok := proj.Services[want.Name]
		if !ok || len(want.Calls) > 0 {
			continue
		}
		co := where + ": " + want.Name + with
		env := envOf(s)
		reached := map[string]bool{}
		for i, raw := range strings.Split(env("RABBITMQ_URL"), ",") {
			u, err := url.Parse(strings.TrimSpace(raw))
			if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") {
				p.addf("%s: RABBITMQ_URL element %d is not an amqp URL", co, i+1)
				continue
			}
			if _, ok := hostnames[u.Hostname()]; !ok {
				p.addf("%s: RABBITMQ_URL element %d names %s, not a node of the %q profile", co, i+1, u.Hostname(), clusterProfile)
			}
			reached[u.Hostname()] = true
		}
		for h := range hostnames {
			if !reached[h] {
				p.addf("%s: RABBITMQ_URL does not list node %s: it cannot fail over to it", co, h)
			}
		}
		for _, v := range []string{"QUEUE_TYPE", "DLQ_QUEUE_TYPE"} {
			if got := env(v); got != "quorum" {
				p.addf("%s: %s %q, want quorum (a classic queue lives on one node: while it is down its tenant is not consumed)", co, v, got)
			}
		}
		if n, err := strconv.Atoi(env("QUEUE_REPLICAS")); err != nil || n < 1 || n > len(hostnames) {
			p.addf("%s: QUEUE_REPLICAS %q, want 1..%d (the profile's nodes)", co, env("QUEUE_REPLICAS"), len(hostnames))
		}
		if want.Name == "command" {
			if u, err := url.Parse(env("RABBITMQ_MANAGEMENT_URL")); err != nil || hostnames[u.Hostname()] == "" {
				p.addf("%s: RABBITMQ_MANAGEMENT_URL must name a node of the %q profile (tenant accounts live in the cluster)", co, clusterProfile)
			}
		}
	}
}

// sameTopology requires command and consumer to get the same queue settings.
func sameTopology(where, with string, proj *types.Project, p *problems) {
	cmd, ok1 := proj.Services["command"]
	con, ok2 := proj.Services["consumer"]
	if !ok1 || !ok2 {
		return
	}
	for _, v := range topologyVars {
		if a, b := envOf(cmd)(v), envOf(con)(v); a != b {
			p.addf("%s%s: command has %s %q, consumer %q: both declare tenant queues and must agree", where, with, v, a, b)
		}
	}
}

func envOf(s types.ServiceConfig) func(string) string {
	return func(k string) string {
		if v := s.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
}
