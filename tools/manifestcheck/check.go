package main

import (
	"fmt"
	"path/filepath"
)

// service is one of the product's deployable services, with its HTTP port (the default
// HTTP_ADDR of its binary).
type service struct {
	Name string
	Port int
}

// services are the three binaries every deployment form must run.
var services = []service{{"command", 8080}, {"query", 8081}, {"consumer", 8082}}

// requiredMetrics must each be charted by the dashboard.
var requiredMetrics = []string{
	"http_request_duration_seconds",
	"tenant_workers_current",
	"queue_messages_pending",
	"messages_processed_total",
	"consumer_message_processing_seconds",
	"query_projection_lag_events",
}

// defaultShutdownTimeout is config.Base's SHUTDOWN_TIMEOUT default.
const defaultShutdownTimeoutSeconds = 30

// Summary counts what was checked, for the success line.
type Summary struct {
	Files, Objects  int
	ComposeServices int
	Panels          int
	Images          int // services whose image deployments/Dockerfile builds
}

// problems collects findings; each names the file and object it is about.
type problems []string

func (p *problems) addf(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

// Check validates every deployment file under root and returns what it found wrong.
func Check(root string) (Summary, []string) {
	var sum Summary
	var p problems
	sum.Files, sum.Objects = checkK8s(filepath.Join(root, "deployments", "k8s"), &p)
	sum.ComposeServices = checkCompose(root, filepath.Join(root, "docker-compose.yml"), &p)
	checkPrometheus(filepath.Join(root, "deployments", "prometheus.yml"), &p)
	sum.Panels = checkDashboard(filepath.Join(root, "deployments", "grafana", "dashboards", "mtm.json"), &p)
	sum.Images = checkDockerfiles(root, &p)
	return sum, p
}
