package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// bindAddrProbe is the BIND_ADDR the compose file is loaded with a second time, to see
// that every published port follows it (a documentation address, RFC 5737).
const bindAddrProbe = "192.0.2.1"

// loadCompose loads the compose file as `docker compose config` does (compose-spec
// schema, interpolation, merge keys) with env as the whole environment.
func loadCompose(root, path string, env types.Mapping) (*types.Project, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: path}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SetProjectName("mtm", true)
		// Every profile: a service started only with --profile is checked like the rest.
		o.Profiles = []string{"*"}
	})
}

// checkCompose loads the compose file with an empty environment, so the file's own
// defaults are what is checked, then checks the start-up order, shutdown settings, the
// metrics listeners and the host interfaces ports are published on. It returns the
// number of services, each product service's METRICS_ADDR port (for prometheus.yml) and
// the prometheus service's bind mounts, container path -> source relative to root (for
// its rule_files).
func checkCompose(root, path string, p *problems) (int, map[string]int, map[string]string) {
	metricsPorts := map[string]int{}
	promMounts := map[string]string{}
	abs, err := filepath.Abs(root)
	if err != nil {
		p.addf("compose: %v", err)
		return 0, metricsPorts, promMounts
	}
	proj, err := loadCompose(abs, path, types.Mapping{})
	if err != nil {
		p.addf("%s: %v", filepath.Base(path), err)
		return 0, metricsPorts, promMounts
	}
	where := filepath.Base(path)
	svc := func(name string) (types.ServiceConfig, bool) {
		s, ok := proj.Services[name]
		if !ok {
			p.addf("%s: service %q is missing", where, name)
		}
		return s, ok
	}

	for _, name := range []string{"postgres", "rabbitmq"} {
		if s, ok := svc(name); ok {
			if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
				p.addf("%s: %s needs a healthcheck (the services wait for service_healthy)", where, name)
			}
			if len(s.Ports) == 0 {
				p.addf("%s: %s must publish its port (scripts/deps.sh and the tests reach it on localhost)", where, name)
			}
		}
	}
	if s, ok := svc("rabbitmq"); ok {
		if !strings.Contains(s.Image, "management") {
			p.addf("%s: rabbitmq image %q lacks the management plugin", where, s.Image)
		}
		// Each quorum queue holds about 3 file handles: the image's default limit would
		// cap the tenants far below MAX_TENANTS.
		if u := s.Ulimits["nofile"]; u == nil || min(u.Soft, u.Hard) < minBrokerNofile && u.Single < minBrokerNofile {
			p.addf("%s: rabbitmq needs ulimits.nofile of at least %d (about 3 file handles a quorum queue)", where, minBrokerNofile)
		}
		if !mountsEnabledPlugins(abs, s) {
			p.addf("%s: rabbitmq must mount an enabled_plugins file with rabbitmq_prometheus at /etc/rabbitmq/enabled_plugins (Prometheus scrapes rabbitmq:15692)", where)
		}
	}
	// build checks that a service's image is built from deployments/Dockerfile for the
	// service its binary is.
	build := func(co string, s types.ServiceConfig, service string) {
		if s.Build == nil {
			p.addf("%s: needs a build section (docker compose up --build)", co)
			return
		}
		if filepath.ToSlash(s.Build.Dockerfile) != dockerfile {
			p.addf("%s: build.dockerfile %q, want %s", co, s.Build.Dockerfile, dockerfile)
		} else if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
			p.addf("%s: Dockerfile %s: %v", co, s.Build.Dockerfile, err)
		}
		if v := s.Build.Args["SERVICE"]; v == nil || *v != service {
			got := "<unset>"
			if v != nil {
				got = *v
			}
			p.addf("%s: build.args.SERVICE %s, want %s", co, got, service)
		}
	}
	migrateImage := ""
	if s, ok := svc("migrate"); ok {
		migrateImage = s.Image
		if s.Build != nil { // else it runs the image the command service builds
			build(where+": migrate", s, "command")
		}
		if !slices.Contains(s.Command, "-migrate") {
			p.addf("%s: migrate must run -migrate, runs %v", where, s.Command)
		}
		if s.Restart != "" && s.Restart != "no" && !strings.HasPrefix(s.Restart, "on-failure") {
			p.addf("%s: migrate is one-shot; restart %q would rerun it forever", where, s.Restart)
		}
	}
	for _, want := range services {
		s, ok := svc(want.Name)
		if !ok {
			continue
		}
		co := where + ": " + want.Name
		if want.Name == "command" && migrateImage != "" && s.Image != migrateImage {
			p.addf("%s: image %q differs from migrate's %q", co, s.Image, migrateImage)
		}
		build(co, s, want.Name)
		wantDeps := map[string]string{
			"postgres": types.ServiceConditionHealthy,
			"rabbitmq": types.ServiceConditionHealthy,
			"migrate":  types.ServiceConditionCompletedSuccessfully,
		}
		if len(want.Calls) > 0 {
			// The services have no healthcheck (distroless: no shell): started is what
			// compose can know; the caller's /readyz waits for their /readyz.
			wantDeps = map[string]string{}
			for _, c := range want.Calls {
				wantDeps[c] = types.ServiceConditionStarted
			}
		}
		for dep, cond := range wantDeps {
			if got, ok := s.DependsOn[dep]; !ok || got.Condition != cond {
				p.addf("%s: depends_on %s must be condition %s", co, dep, cond)
			}
		}
		env := func(k string) string {
			if v := s.Environment[k]; v != nil {
				return *v
			}
			return ""
		}
		for _, c := range want.Calls {
			if got := env(upstreamVar(c)); got != upstreamURL(c) {
				p.addf("%s: %s %q, want %s", co, upstreamVar(c), got, upstreamURL(c))
			}
		}
		if addr := env("HTTP_ADDR"); addr != "" {
			if _, port, err := net.SplitHostPort(addr); err != nil || port != strconv.Itoa(want.Port) {
				p.addf("%s: HTTP_ADDR %q, want port %d", co, addr, want.Port)
			}
		}
		if !slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == uint32(want.Port) }) {
			p.addf("%s: must publish container port %d", co, want.Port)
		}
		// Prometheus cannot hold the short-lived admin JWT /metrics needs on HTTP_ADDR once
		// JWT_SECRET is set: it scrapes the METRICS_ADDR listener, which has no
		// authentication and so must stay on the compose network.
		if addr := env("METRICS_ADDR"); addr == "" {
			p.addf("%s: METRICS_ADDR must be set: Prometheus scrapes /metrics there (on HTTP_ADDR it needs an admin JWT once JWT_SECRET is set)", co)
		} else if port, err := listenPort(addr); err != nil {
			p.addf("%s: METRICS_ADDR %q: %v", co, addr, err)
		} else if port == want.Port {
			p.addf("%s: METRICS_ADDR %q must not share HTTP_ADDR's port %d", co, addr, want.Port)
		} else {
			metricsPorts[want.Name] = port
			if slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == uint32(port) }) {
				p.addf("%s: publishes its metrics port %d: METRICS_ADDR serves /metrics without authentication, keep it on the compose network", co, port)
			}
		}
		timeout := time.Duration(defaultShutdownTimeoutSeconds) * time.Second
		if v := env("SHUTDOWN_TIMEOUT"); v != "" {
			if timeout, err = time.ParseDuration(v); err != nil {
				p.addf("%s: SHUTDOWN_TIMEOUT %q: %v", co, v, err)
			}
		}
		grace := 10 * time.Second // compose's default
		if s.StopGracePeriod != nil {
			grace = time.Duration(*s.StopGracePeriod)
		}
		if grace <= timeout {
			p.addf("%s: stop_grace_period %s must exceed SHUTDOWN_TIMEOUT %s, or a draining service is killed", co, grace, timeout)
		}
	}
	if s, ok := svc("prometheus"); ok {
		if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
			return strings.HasSuffix(filepath.ToSlash(v.Source), "deployments/prometheus.yml")
		}) {
			p.addf("%s: prometheus must mount deployments/prometheus.yml", where)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				promMounts[v.Target] = filepath.ToSlash(relTo(abs, v.Source))
			}
		}
	}
	checkPublishedPorts(where, abs, path, proj, p)
	checkTracing(where, proj, p)
	checkCluster(where, abs, path, proj, p)
	// A bind mount of a missing path would make Docker create an empty directory there.
	for name, s := range proj.Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					p.addf("%s: %s mounts %s, which does not exist", where, name, relTo(abs, v.Source))
				}
			}
		}
	}
	return len(proj.Services), metricsPorts, promMounts
}

// checkPublishedPorts requires every published port to bind a loopback address by default
// (Docker's default host IP is every interface, which would publish PostgreSQL and
// RabbitMQ with their well-known credentials, and the tenant ids Prometheus shows, to the
// network), and to follow BIND_ADDR, the one switch that exposes them deliberately.
func checkPublishedPorts(where, abs, path string, proj *types.Project, p *problems) {
	probe, err := loadCompose(abs, path, types.Mapping{"BIND_ADDR": bindAddrProbe})
	if err != nil {
		p.addf("%s: with BIND_ADDR=%s: %v", where, bindAddrProbe, err)
		return
	}
	for _, name := range slices.Sorted(maps.Keys(proj.Services)) {
		probed := probe.Services[name].Ports
		for i, pc := range proj.Services[name].Ports {
			port := fmt.Sprintf("%s:%d", cmp.Or(pc.Published, "<random>"), pc.Target)
			if ip := net.ParseIP(pc.HostIP); ip == nil || !ip.IsLoopback() {
				p.addf("%s: %s publishes %s on %s by default: bind it to ${BIND_ADDR:-127.0.0.1}",
					where, name, port, cmp.Or(pc.HostIP, "every interface"))
			}
			if i >= len(probed) || probed[i].HostIP != bindAddrProbe {
				p.addf("%s: %s publishes %s without following BIND_ADDR: bind it to ${BIND_ADDR:-127.0.0.1}", where, name, port)
			}
		}
	}
}

// tracingProfile is the compose profile that adds the trace backend.
const tracingProfile = "tracing"

// checkTracing requires the trace backend to start only with its profile, and the
// product services to keep tracing off by default (OTEL_TRACES_EXPORTER none) while
// their OTLP endpoint names that backend's OTLP/HTTP port, the one protocol the services
// export with: `OTEL_TRACES_EXPORTER=otlp docker compose --profile tracing up` is then
// all it takes.
func checkTracing(where string, proj *types.Project, p *problems) {
	var backend string
	for _, name := range slices.Sorted(maps.Keys(proj.Services)) {
		if slices.Contains(proj.Services[name].Profiles, tracingProfile) {
			backend = name
			if s := proj.Services[name]; len(s.Profiles) != 1 {
				p.addf("%s: %s must be in the %q profile alone, got %v", where, name, tracingProfile, s.Profiles)
			}
		}
	}
	if backend == "" {
		p.addf("%s: no service in the %q profile (the trace backend)", where, tracingProfile)
		return
	}
	for _, want := range services {
		s, ok := proj.Services[want.Name]
		// The console only calls the two APIs: it has no spans worth a backend.
		if !ok || len(want.Calls) > 0 {
			continue
		}
		env := func(k string) string {
			if v := s.Environment[k]; v != nil {
				return *v
			}
			return ""
		}
		if got := env("OTEL_TRACES_EXPORTER"); got != "none" {
			p.addf("%s: %s: OTEL_TRACES_EXPORTER %q by default, want none (tracing on only when asked for)", where, want.Name, got)
		}
		if got, wantURL := env("OTEL_EXPORTER_OTLP_ENDPOINT"), "http://"+backend+":4318"; got != wantURL {
			p.addf("%s: %s: OTEL_EXPORTER_OTLP_ENDPOINT %q, want %s (the %q profile's OTLP/HTTP port)", where, want.Name, got, wantURL, tracingProfile)
		}
	}
}

func relTo(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}

// composeTarget is how Prometheus reaches a compose service's port.
func composeTarget(name string, port int) string { return fmt.Sprintf("%s:%d", name, port) }

// minBrokerNofile is the least file limit the compose broker gets: room for MAX_TENANTS'
// default of 1000 tenants many times over.
const minBrokerNofile = 65536

// mountsEnabledPlugins reports whether s mounts a file at /etc/rabbitmq/enabled_plugins
// that enables rabbitmq_prometheus.
func mountsEnabledPlugins(root string, s types.ServiceConfig) bool {
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind || v.Target != "/etc/rabbitmq/enabled_plugins" {
			continue
		}
		src := v.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(root, src)
		}
		raw, err := os.ReadFile(src)
		return err == nil && strings.Contains(string(raw), "rabbitmq_prometheus")
	}
	return false
}
