package main

import (
	"context"
	"fmt"
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

// checkCompose loads the compose file as `docker compose config` does (compose-spec
// schema, interpolation, merge keys), with an empty environment so the file's own
// defaults are what is checked, then checks the start-up order and shutdown settings.
func checkCompose(root, path string, p *problems) int {
	abs, err := filepath.Abs(root)
	if err != nil {
		p.addf("compose: %v", err)
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	proj, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: path}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("mtm", true)
	})
	if err != nil {
		p.addf("%s: %v", filepath.Base(path), err)
		return 0
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
	if s, ok := svc("rabbitmq"); ok && !strings.Contains(s.Image, "management") {
		p.addf("%s: rabbitmq image %q lacks the management plugin", where, s.Image)
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
		if addr := env("HTTP_ADDR"); addr != "" {
			if _, port, err := net.SplitHostPort(addr); err != nil || port != strconv.Itoa(want.Port) {
				p.addf("%s: HTTP_ADDR %q, want port %d", co, addr, want.Port)
			}
		}
		if !slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == uint32(want.Port) }) {
			p.addf("%s: must publish container port %d", co, want.Port)
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
	}
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
	return len(proj.Services)
}

func relTo(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}

// composeServiceTarget is how Prometheus reaches a compose service.
func composeServiceTarget(s service) string { return fmt.Sprintf("%s:%d", s.Name, s.Port) }
