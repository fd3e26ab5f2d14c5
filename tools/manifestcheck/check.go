package main

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// service is one of the product's deployable services, with its HTTP port (the default
// HTTP_ADDR of its binary).
type service struct {
	Name string
	Port int
	// Calls are the services it reaches over HTTP instead of using Postgres and RabbitMQ
	// (the console): each by a <NAME>_URL variable that must point at that service, and
	// in compose it waits for them rather than for the database and the migration.
	Calls []string
}

// services are the binaries every deployment form must run.
var services = []service{
	{Name: "command", Port: 8080},
	{Name: "query", Port: 8081},
	{Name: "consumer", Port: 8082},
	{Name: "console", Port: 8083, Calls: []string{"command", "query"}},
}

func isService(name string) bool {
	_, ok := serviceNamed(name)
	return ok
}

func serviceNamed(name string) (service, bool) {
	i := slices.IndexFunc(services, func(s service) bool { return s.Name == name })
	if i < 0 {
		return service{}, false
	}
	return services[i], true
}

// upstreamVar is the variable that points a caller at service name: COMMAND_URL.
func upstreamVar(name string) string { return strings.ToUpper(name) + "_URL" }

// upstreamURL is service name's address by its compose service or Kubernetes Service
// name (both are the service's name) and HTTP port.
func upstreamURL(name string) string {
	s, _ := serviceNamed(name)
	return "http://" + name + ":" + strconv.Itoa(s.Port)
}

// metricsPortName is the containerPort name of the METRICS_ADDR listener in Kubernetes.
const metricsPortName = "metrics"

// listenPort returns the port of a listen address in net.Listen's host:port form
// (HTTP_ADDR, METRICS_ADDR).
func listenPort(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("not host:port: %w", err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not in 1..65535", port)
	}
	return n, nil
}

// requiredMetrics must each be charted by the dashboard.
var requiredMetrics = []string{
	"http_request_duration_seconds",
	"tenant_workers_current",
	"queue_messages_pending",
	"messages_processed_total",
	"consumer_message_processing_seconds",
	"query_projection_lag_events",
	"queue_messages_unacked",
	"consumer_tenant_delivery_lag_seconds",
	"consumer_delivery_lag_seconds",
	"dead_letters_pending",
	"tenant_paused",
	"queue_dead_letters",
	"service_ready",
	"rabbitmq_process_open_fds",
	"rabbitmq_process_max_fds",
	"rabbitmq_process_resident_memory_bytes",
	"rabbitmq_queues",
}

// requiredAlerts are the metrics the alert rules must alert on: a tenant's lag, its
// pending dead letters, a service that is not ready or not scraped at all.
var requiredAlerts = []string{
	"consumer_tenant_delivery_lag_seconds",
	"dead_letters_pending",
	"service_ready",
	"up",
}

// defaultShutdownTimeout is config.Base's SHUTDOWN_TIMEOUT default.
const defaultShutdownTimeoutSeconds = 30

// Summary counts what was checked, for the success line.
type Summary struct {
	Files, Objects  int
	ComposeServices int
	Panels          int
	Alerts          int // alerting rules in prometheus.yml's rule_files
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
	var metricsPorts map[string]int
	var promMounts map[string]string
	sum.ComposeServices, metricsPorts, promMounts = checkCompose(root, filepath.Join(root, "docker-compose.yml"), &p)
	ruleFiles := checkPrometheus(filepath.Join(root, "deployments", "prometheus.yml"), metricsPorts, &p)
	defined := definedMetrics(root, &p)
	sum.Alerts = checkRuleFiles(root, ruleFiles, promMounts, defined, &p)
	sum.Panels = checkDashboard(filepath.Join(root, "deployments", "grafana", "dashboards", "mtm.json"), defined, &p)
	sum.Images = checkDockerfiles(root, &p)
	return sum, p
}
