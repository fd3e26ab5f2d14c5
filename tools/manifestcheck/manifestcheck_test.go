package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
)

const repoRoot = "../.."

// TestRepositoryDeploymentsPass is the check `make lint-deploy` runs, as a test, so
// `make test` also fails on a broken manifest.
func TestRepositoryDeploymentsPass(t *testing.T) {
	t.Parallel()
	sum, problems := Check(repoRoot)
	require.Empty(t, problems)
	require.Equal(t, 8, sum.Files)
	require.GreaterOrEqual(t, sum.Objects, 4*2+4, "Deployment+Service per service, Namespace, ConfigMap, Secret, Job")
	require.GreaterOrEqual(t, sum.ComposeServices, 8)
	require.Equal(t, 4, sum.Images)
	require.Positive(t, sum.Panels)
	require.GreaterOrEqual(t, sum.Alerts, 4)
}

// copyDeployments copies the repository's deployment files into a temporary root.
func copyDeployments(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	copyFile := func(rel string) {
		raw, err := os.ReadFile(filepath.Join(repoRoot, rel))
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dst, rel), raw, 0o644))
	}
	copyFile("docker-compose.yml")
	// The Go sources define the metric names the dashboard and the rules may use.
	for _, dir := range []string{"services", "platform"} {
		abs, err := filepath.Abs(filepath.Join(repoRoot, dir))
		require.NoError(t, err)
		require.NoError(t, os.Symlink(abs, filepath.Join(dst, dir)))
	}
	err := filepath.WalkDir(filepath.Join(repoRoot, "deployments"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(repoRoot, path)
		if err == nil {
			copyFile(rel)
		}
		return err
	})
	require.NoError(t, err)
	return dst
}

// edit replaces the first occurrence of old in root/rel, failing if it is absent (so a
// case never silently tests an unchanged file).
func edit(t *testing.T, root, rel, old, new string) {
	t.Helper()
	path := filepath.Join(root, rel)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(raw), old, "%s: text to replace not found", rel)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(raw), old, new, 1)), 0o644))
}

func TestRejectsBrokenFiles(t *testing.T) {
	t.Parallel()
	const cmd = "deployments/k8s/command.yaml"
	const rules = "deployments/prometheus-alerts.yml"
	cases := []struct {
		name, file, old, new, want string
	}{
		{"unknown field", cmd, "  revisionHistoryLimit: 5", "  revisionHistoryLimt: 5", `unknown field "revisionHistoryLimt"`},
		{"wrong type", cmd, "  minReplicas: 2", `  minReplicas: "two"`, "does not match its schema"},
		{"duplicate key", cmd, "  minReplicas: 2", "  minReplicas: 2\n  minReplicas: 3", "invalid YAML"},
		{"bad quantity", cmd, "memory: 512Mi", "memory: 512 MB", "does not match its schema"},
		{"unknown kind", "deployments/k8s/namespace.yaml", "kind: Namespace", "kind: Namepsace", `no schema for apiVersion "v1" kind "Namepsace"`},
		{"no readiness probe", cmd, "readinessProbe:", "x-readinessProbe:", "unknown field"},
		{"readiness on healthz", cmd, "path: /readyz", "path: /healthz", `readinessProbe path "/healthz", want "/readyz"`},
		{"probe port undeclared", cmd, "              port: http\n            periodSeconds: 10", "              port: admin\n            periodSeconds: 10", "livenessProbe port admin is not a declared container port"},
		{"grace too short", cmd, "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds 30 must exceed SHUTDOWN_TIMEOUT 30s + preStop 5s"},
		{"shutdown timeout raised alone", "deployments/k8s/config.yaml", `SHUTDOWN_TIMEOUT: "30s"`, `SHUTDOWN_TIMEOUT: "60s"`, "must exceed SHUTDOWN_TIMEOUT 1m0s"},
		{"latest image", cmd, "image: mtm/command:dev\n          imagePullPolicy: IfNotPresent\n          ports", "image: mtm/command:latest\n          imagePullPolicy: IfNotPresent\n          ports", `image "mtm/command:latest" must carry an explicit tag`},
		{"writable root fs", "deployments/k8s/query.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem must be true"},
		{"root allowed", "deployments/k8s/migrate-job.yaml", "runAsNonRoot: true\n            capabilities", "runAsNonRoot: false\n            capabilities", `Job "mtm-migrate" container "migrate": runAsNonRoot must be true`},
		{"privilege escalation", "deployments/k8s/migrate-job.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "allowPrivilegeEscalation must be false"},
		{"no memory limit", "deployments/k8s/consumer.yaml", "              memory: 1Gi", "              ephemeral-storage: 1Gi", "resources.limits.memory is required"},
		{"missing configmap", "deployments/k8s/query.yaml", "name: mtm-config", "name: mtm-cfg", `envFrom ConfigMap "mtm-cfg" does not exist`},
		{"service selects nothing", "deployments/k8s/consumer.yaml", "  selector:\n    app.kubernetes.io/name: consumer", "  selector:\n    app.kubernetes.io/name: consumr", "selector matches no Deployment's pods"},
		{"selector mismatch", "deployments/k8s/query.yaml", "    matchLabels:\n      app.kubernetes.io/name: query", "    matchLabels:\n      app.kubernetes.io/name: qry", "spec.selector does not match the pod template labels"},
		{"http addr mismatch", cmd, `value: ":8080"`, `value: ":9090"`, `HTTP_ADDR ":9090" does not listen on a declared containerPort`},
		{"file not in kustomization", "deployments/k8s/kustomization.yaml", "  - query.yaml\n", "", "query.yaml is not listed in resources"},
		{"no migrate job", "deployments/k8s/migrate-job.yaml", `args: ["-migrate"]`, `args: ["-replay"]`, "no Job runs -migrate"},
		{"compose unknown key", "docker-compose.yml", "    stop_grace_period: 40s\n    restart: unless-stopped\n\n  consumer:", "    stop_grace_priod: 40s\n    restart: unless-stopped\n\n  consumer:", "stop_grace_priod"},
		{"compose grace too short", "docker-compose.yml", "    stop_grace_period: 40s\n    restart: unless-stopped\n\n  query:", "    restart: unless-stopped\n\n  query:", "consumer: stop_grace_period 10s must exceed SHUTDOWN_TIMEOUT 30s"},
		{"compose no healthcheck", "docker-compose.yml", `test: ["CMD", "rabbitmq-diagnostics", "-q", "ping"]`, `disable: true`, "rabbitmq needs a healthcheck"},
		{"compose start order", "docker-compose.yml", "condition: service_completed_successfully", "condition: service_started", "depends_on migrate must be condition service_completed_successfully"},
		{"compose missing mount", "docker-compose.yml", "./deployments/prometheus.yml:", "./deployments/prom.yml:", "prometheus must mount deployments/prometheus.yml"},
		{"prometheus misses a service", "deployments/prometheus.yml", `"query:9100"`, `"query:9999"`, "does not scrape query:9100 (METRICS_ADDR in docker-compose.yml)"},
		{"prometheus scrapes the http port", "deployments/prometheus.yml", `"consumer:9100"`, `"consumer:8082"`, "scrapes consumer:8082, the HTTP port"},
		{"prometheus behind metrics addr", "docker-compose.yml", "HTTP_ADDR: \":8081\"\n      METRICS_ADDR: \":9100\"", "HTTP_ADDR: \":8081\"\n      METRICS_ADDR: \":9200\"", "does not scrape query:9200"},
		{"prometheus wrong metrics path", "deployments/prometheus.yml", "metrics_path: /metrics", "metrics_path: /debug/metrics", `job command: metrics_path "/debug/metrics", want /metrics`},
		{"compose no metrics addr", "docker-compose.yml", "      METRICS_ADDR: \":9100\"", "      LOG_LEVEL: debug", "command: METRICS_ADDR must be set"},
		{"compose bad metrics addr", "docker-compose.yml", "METRICS_ADDR: \":9100\"", "METRICS_ADDR: \"9100\"", `command: METRICS_ADDR "9100": not host:port`},
		{"compose metrics on http port", "docker-compose.yml", "HTTP_ADDR: \":8082\"\n      METRICS_ADDR: \":9100\"", "HTTP_ADDR: \":8082\"\n      METRICS_ADDR: \":8082\"", `consumer: METRICS_ADDR ":8082" must not share HTTP_ADDR's port 8082`},
		{"compose metrics published", "docker-compose.yml", "      - \"${BIND_ADDR:-127.0.0.1}:${CONSUMER_PORT:-8082}:8082\"\n", "      - \"${BIND_ADDR:-127.0.0.1}:${CONSUMER_PORT:-8082}:8082\"\n      - \"${BIND_ADDR:-127.0.0.1}:9100:9100\"\n", "consumer: publishes its metrics port 9100"},
		{"compose postgres on every interface", "docker-compose.yml", `"${BIND_ADDR:-127.0.0.1}:${PG_PORT:-5432}:5432"`, `"${PG_PORT:-5432}:5432"`, "postgres publishes 5432:5432 on every interface by default"},
		{"compose rabbitmq ui defaults to all", "docker-compose.yml", "${BIND_ADDR:-127.0.0.1}:${MQ_UI_PORT", "${BIND_ADDR:-0.0.0.0}:${MQ_UI_PORT", "rabbitmq publishes 15672:15672 on 0.0.0.0 by default"},
		{"compose random host port", "docker-compose.yml", `"${BIND_ADDR:-127.0.0.1}:${QUERY_PORT:-8081}:8081"`, `"8081"`, "query publishes <random>:8081 on every interface by default"},
		{"compose port ignores bind addr", "docker-compose.yml", `"${BIND_ADDR:-127.0.0.1}:${COMMAND_PORT:-8080}:8080"`, `"127.0.0.1:${COMMAND_PORT:-8080}:8080"`, "command publishes 8080:8080 without following BIND_ADDR"},
		{"compose jaeger without profile", "docker-compose.yml", "    profiles: [tracing]\n", "", `no service in the "tracing" profile`},
		{"compose jaeger in two profiles", "docker-compose.yml", "profiles: [tracing]", "profiles: [tracing, debug]", `jaeger must be in the "tracing" profile alone`},
		{"compose tracing on by default", "docker-compose.yml", "${OTEL_TRACES_EXPORTER:-none}", "${OTEL_TRACES_EXPORTER:-otlp}", `command: OTEL_TRACES_EXPORTER "otlp" by default, want none`},
		{"compose otlp grpc port", "docker-compose.yml", "http://jaeger:4318", "http://jaeger:4317", `query: OTEL_EXPORTER_OTLP_ENDPOINT "http://jaeger:4317", want http://jaeger:4318`},
		{"compose jaeger ui on every interface", "docker-compose.yml", `"${BIND_ADDR:-127.0.0.1}:${JAEGER_PORT:-16686}:16686"`, `"16686:16686"`, "jaeger publishes 16686:16686 on every interface by default"},
		{"compose long syntax without host ip", "docker-compose.yml", `      - "${BIND_ADDR:-127.0.0.1}:${GRAFANA_PORT:-3000}:3000"`, "      - target: 3000\n        published: \"3000\"", "grafana publishes 3000:3000 on every interface by default"},
		{"k8s no metrics addr", "deployments/k8s/consumer.yaml", "            - name: METRICS_ADDR\n              value: \":9100\"\n", "", `Deployment "consumer": no container sets a valid METRICS_ADDR`},
		{"k8s bad metrics addr", "deployments/k8s/query.yaml", "value: \":9100\"", "value: \"9100\"", `container "query": METRICS_ADDR "9100": not host:port`},
		{"k8s metrics on http port", cmd, "value: \":9100\"", "value: \":8080\"", `METRICS_ADDR ":8080" must not share HTTP_ADDR's port 8080`},
		{"k8s metrics port undeclared", "deployments/k8s/query.yaml", "            - name: metrics\n              containerPort: 9100\n              protocol: TCP\n", "", `container "query": METRICS_ADDR ":9100" needs containerPort 9100 named metrics`},
		{"k8s metrics port mismatch", cmd, "containerPort: 9100", "containerPort: 9200", `container "command": METRICS_ADDR ":9100" needs containerPort 9100 named metrics`},
		{"k8s annotation on http port", cmd, `prometheus.io/port: "9100"`, `prometheus.io/port: "8080"`, `annotation prometheus.io/port "8080", want "9100" (METRICS_ADDR)`},
		{"k8s annotation missing", "deployments/k8s/consumer.yaml", "        prometheus.io/port: \"9100\"\n", "", `Deployment "consumer": pod template annotation prometheus.io/port is required, want "9100"`},
		{"k8s not scraped", "deployments/k8s/query.yaml", `prometheus.io/scrape: "true"`, `prometheus.io/scrape: "false"`, `Deployment "query": pod template annotation prometheus.io/scrape must be "true"`},
		{"k8s service exposes metrics", "deployments/k8s/consumer.yaml", "      targetPort: http\n      protocol: TCP\n", "      targetPort: http\n      protocol: TCP\n    - name: metrics\n      port: 9100\n      targetPort: metrics\n", `Service "consumer": port 9100 targets the metrics port of Deployment "consumer"`},
		{"k8s service exposes metrics by number", cmd, "      port: 8080\n      targetPort: http\n", "      port: 8080\n      targetPort: 9100\n", `Service "command": port 8080 targets the metrics port of Deployment "command"`},
		{"prometheus typo", "deployments/prometheus.yml", "scrape_interval: 5s", "scrape_intervall: 5s", "unknown field"},
		{"rules unknown key", rules, "        annotations:\n          summary: \"Tenant {{ $labels.tenant_id }} is", "        anotations:\n          summary: \"Tenant {{ $labels.tenant_id }} is", `unknown field "anotations"`},
		{"rules no for", rules, "        expr: service_ready == 0\n        for: 1m\n", "        expr: service_ready == 0\n", "group mtm-services: ServiceNotReady: for is required"},
		{"rules bad duration", rules, "for: 10m", "for: 10 minutes", `TenantDeadLettersPending: "10 minutes" is not a Prometheus duration`},
		{"rules bad severity", rules, "severity: warning", "severity: page", `TenantDeliveryLagHigh: label severity "page", want one of warning, critical`},
		{"rules no severity", rules, "        labels:\n          severity: critical\n        annotations:\n          summary: \"{{ $labels.job }} ({{ $labels.instance }}) cannot", "        annotations:\n          summary: \"{{ $labels.job }} ({{ $labels.instance }}) cannot", `ServiceDown: label severity "", want one of warning, critical`},
		{"rules no summary", rules, "summary: \"{{ $labels.job }} ({{ $labels.instance }}) cannot be scraped\"", "message: \"down\"", "ServiceDown: annotation summary is required"},
		{"rules broken template", rules, "summary: \"{{ $labels.job }} ({{ $labels.instance }}) has not", "summary: \"{{ $labels.job } ({{ $labels.instance }}) has not", "ServiceNotReady: annotation summary: unbalanced {{ }}"},
		{"rules repeated group", rules, "  - name: mtm-services", "  - name: mtm-tenants", `group name "mtm-tenants" empty or repeated`},
		{"rules repeated alert", rules, "alert: ServiceDown", "alert: ServiceNotReady", "ServiceNotReady: alert name must be CamelCase and used once"},
		{"rules alert and record", rules, "      - alert: ServiceDown\n", "      - alert: ServiceDown\n        record: service:down\n", "ServiceDown: set exactly one of alert and record"},
		{"rules empty expr", rules, "expr: service_ready == 0", `expr: ""`, "ServiceNotReady: expr is empty"},
		{"rules unbalanced expr", rules, "expr: service_ready == 0", "expr: max(service_ready == 0", "ServiceNotReady: unbalanced brackets or quotes in expr"},
		{"rules unknown metric", rules, "expr: service_ready == 0", "expr: service_readiness == 0", "ServiceNotReady: expr uses metric service_readiness, which no service defines"},
		{"rules miss a required alert", rules, "expr: service_ready == 0", "expr: up == 0", "no alert uses service_ready"},
		{"rules not loaded", "deployments/prometheus.yml", "rule_files:\n  - prometheus-alerts.yml\n", "", "rule_files is empty: it must load the alert rules"},
		{"rules file missing", "deployments/prometheus.yml", "  - prometheus-alerts.yml", "  - alerts.yml", "deployments/alerts.yml: open"},
		{"rules absolute path", "deployments/prometheus.yml", "  - prometheus-alerts.yml", "  - /etc/prometheus/prometheus-alerts.yml", `rule_files entry "/etc/prometheus/prometheus-alerts.yml" must be a plain path relative to prometheus.yml`},
		{"rules not mounted", "docker-compose.yml", "      - ./deployments/prometheus-alerts.yml:/etc/prometheus/prometheus-alerts.yml:ro\n", "", "prometheus must mount ./deployments/prometheus-alerts.yml at /etc/prometheus/prometheus-alerts.yml"},
		{"rules mounted elsewhere", "docker-compose.yml", ":/etc/prometheus/prometheus-alerts.yml:ro", ":/etc/prometheus/rules/alerts.yml:ro", "prometheus must mount ./deployments/prometheus-alerts.yml at /etc/prometheus/prometheus-alerts.yml"},
		{"dashboard unknown metric", "deployments/grafana/dashboards/mtm.json", "sum(tenant_workers_current)", "sum(tenant_worker_current)", `panel "Workers running": no service defines metric tenant_worker_current`},
		{"dashboard misses a metric", "deployments/grafana/dashboards/mtm.json", "(queue_messages_unacked{", "(queue_messages_pending{", "no panel charts queue_messages_unacked"},
		{"dashboard unlisted broker metric", "deployments/grafana/dashboards/mtm.json", `"rabbitmq_queues"`, `"rabbitmq_queue_count"`, `panel "Queues": no service defines metric rabbitmq_queue_count`},
		{"dashboard misses broker handles", "deployments/grafana/dashboards/mtm.json", `"rabbitmq_process_max_fds"`, `"rabbitmq_process_open_fds"`, "no panel charts rabbitmq_process_max_fds"},
		{"compose broker default file limit", "docker-compose.yml", "    ulimits:\n      nofile:\n        soft: 65536\n        hard: 65536\n", "", "rabbitmq needs ulimits.nofile of at least 65536"},
		{"compose broker low file limit", "docker-compose.yml", "        soft: 65536", "        soft: 1024", "rabbitmq needs ulimits.nofile of at least 65536"},
		{"compose broker without prometheus plugin", "deployments/rabbitmq/enabled_plugins", ",rabbitmq_prometheus", "", "rabbitmq must mount an enabled_plugins file with rabbitmq_prometheus"},
		{"compose broker plugins not mounted", "docker-compose.yml", ":/etc/rabbitmq/enabled_plugins:ro", ":/etc/rabbitmq/plugins:ro", "rabbitmq must mount an enabled_plugins file"},
		{"prometheus misses the broker", "deployments/prometheus.yml", `"rabbitmq:15692"`, `"rabbitmq:15672"`, "does not scrape the broker's rabbitmq_prometheus endpoint rabbitmq:15692"},
		{"dashboard broken expr", "deployments/grafana/dashboards/mtm.json", "sum(tenant_workers_current)", "sum(tenant_workers_current", "unbalanced"},
		{"compose old dockerfile", "docker-compose.yml", "dockerfile: deployments/Dockerfile\n      args:\n        SERVICE: consumer", "dockerfile: deployments/consumer/Dockerfile\n      args:\n        SERVICE: consumer", `consumer: build.dockerfile "deployments/consumer/Dockerfile", want deployments/Dockerfile`},
		{"compose wrong service arg", "docker-compose.yml", "SERVICE: query", "SERVICE: command", "query: build.args.SERVICE command, want query"},
		{"compose no service arg", "docker-compose.yml", "      args:\n        SERVICE: consumer\n", "", "consumer: build.args.SERVICE <unset>, want consumer"},
		{"dockerfile runs as root", dockerfile, "USER 65532:65532", "USER root", `(SERVICE=query): final image must set a non-root USER, got "root"`},
		{"dockerfile final is toolchain", dockerfile, "FROM runtime AS consumer", "FROM build AS consumer", "(SERVICE=consumer): the final image must not be the Go toolchain image golang:1.26"},
		{"dockerfile single stage", dockerfile, "FROM gcr.io/distroless/static-debian12:nonroot AS runtime", "", "FROM runtime is neither an earlier stage nor an image with a tag"},
		{"dockerfile arg not in build stage", dockerfile, "AS build\nARG SERVICE\n", "AS build\n", "(SERVICE=command): build stage must run CGO_ENABLED=0 go build ... ./services/command"},
		{"dockerfile no global arg", dockerfile, "ARG SERVICE\n\n", "\n", "FROM with an empty base"},
		{"dockerfile cgo", dockerfile, "CGO_ENABLED=0 ", "", "build stage must run CGO_ENABLED=0 go build"},
		{"dockerfile binary not copied", dockerfile, "COPY --from=build ", "COPY ", "the final image must COPY the binary --from=build"},
		{"dockerfile wrong port", dockerfile, "EXPOSE 8081", "EXPOSE 8080", "(SERVICE=query): final image must EXPOSE 8081"},
		{"dockerfile wrong http addr", dockerfile, "ENV HTTP_ADDR=:8082", "ENV HTTP_ADDR=:8080", "(SERVICE=consumer): ENV HTTP_ADDR=:8080, want port 8082"},
		{"dockerfile wrong entrypoint", dockerfile, `ENTRYPOINT ["/usr/local/bin/query"]`, `ENTRYPOINT ["/usr/local/bin/command"]`, `(SERVICE=query): final image's ENTRYPOINT must run the query binary`},
		{"console without k8s deployment", "deployments/k8s/console.yaml", "kind: Deployment\nmetadata:\n  name: console", "kind: Deployment\nmetadata:\n  name: konsole", `no Deployment named "console"`},
		{"k8s console wrong upstream", "deployments/k8s/console.yaml", `value: "http://query:8081"`, `value: "http://localhost:8081"`, `QUERY_URL "http://localhost:8081", want http://query:8081 (the Service)`},
		{"compose console wrong upstream", "docker-compose.yml", "COMMAND_URL: http://command:8080", "COMMAND_URL: http://localhost:8080", `console: COMMAND_URL "http://localhost:8080", want http://command:8080`},
		{"compose console not waiting", "docker-compose.yml", "      query:\n        condition: service_started\n", "", "console: depends_on query must be condition service_started"},
		{"prometheus misses the console", "deployments/prometheus.yml", `"console:9100"`, `"console:9999"`, "does not scrape console:9100"},
		{"dockerfile no console stage", dockerfile, "FROM runtime AS console", "FROM runtime AS konsole", "(SERVICE=console): FROM console is neither an earlier stage"},
		{"dockerfile stage typo", dockerfile, "FROM runtime AS command", "FROM runtim AS command", "FROM runtim is neither an earlier stage nor an image with a tag"},
		{"compose cluster cookie differs", "docker-compose.yml", "    hostname: rabbitmq-2\n", "    hostname: rabbitmq-2\n    environment:\n      RABBITMQ_ERLANG_COOKIE: other\n", "rabbitmq-2: RABBITMQ_ERLANG_COOKIE differs from rabbitmq-1's"},
		{"compose cluster hostname twice", "docker-compose.yml", "hostname: rabbitmq-3", "hostname: rabbitmq-2", `rabbitmq-3: hostname "rabbitmq-2" is rabbitmq-2's too`},
		{"compose cluster shared data", "docker-compose.yml", "rabbitmq3data:/var/lib/rabbitmq", "rabbitmq2data:/var/lib/rabbitmq", "rabbitmq-3: shares volume"},
		{"compose cluster other version", "docker-compose.yml", "      image: rabbitmq:3.13-management\n      profiles", "      image: rabbitmq:3.12-management\n      profiles", `rabbitmq-1: image "rabbitmq:3.12-management" differs from rabbitmq's`},
		{"compose cluster low file limit", "docker-compose.yml", "          soft: 65536", "          soft: 4096", "rabbitmq-2: needs ulimits.nofile of at least 65536"},
		{"compose services disagree on replicas", "docker-compose.yml", "      HTTP_ADDR: \":8082\"\n", "      HTTP_ADDR: \":8082\"\n      QUEUE_REPLICAS: \"2\"\n", `command has QUEUE_REPLICAS "0", consumer "2"`},
		{"cluster conf misses a node", "deployments/rabbitmq/cluster.conf", "cluster_formation.classic_config.nodes.3 = rabbit@rabbitmq-3\n", "", "classic_config lists [rabbit@rabbitmq-1 rabbit@rabbitmq-2], want the profile's nodes"},
		{"cluster conf other backend", "deployments/rabbitmq/cluster.conf", "peer_discovery_backend = classic_config", "peer_discovery_backend = k8s", "must set cluster_formation.peer_discovery_backend = classic_config"},
		{"cluster env misses a node", "deployments/rabbitmq/cluster.env", ",amqp://guest:guest@rabbitmq-3:5672/", "", "RABBITMQ_URL does not list node rabbitmq-3"},
		{"cluster env foreign node", "deployments/rabbitmq/cluster.env", "@rabbitmq-2:5672/", "@rabbitmq:5672/", `RABBITMQ_URL element 2 names rabbitmq, not a node of the "cluster" profile`},
		{"cluster env classic dlq", "deployments/rabbitmq/cluster.env", "DLQ_QUEUE_TYPE=quorum", "DLQ_QUEUE_TYPE=classic", `DLQ_QUEUE_TYPE "classic", want quorum`},
		{"cluster env too many replicas", "deployments/rabbitmq/cluster.env", "QUEUE_REPLICAS=3", "QUEUE_REPLICAS=5", `QUEUE_REPLICAS "5", want 1..3`},
		{"cluster env management elsewhere", "deployments/rabbitmq/cluster.env", "@rabbitmq-1:15672", "@rabbitmq:15672", "RABBITMQ_MANAGEMENT_URL must name a node"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := copyDeployments(t)
			edit(t, root, tc.file, tc.old, tc.new)
			_, problems := Check(root)
			require.NotEmpty(t, problems)
			require.Contains(t, strings.Join(problems, "\n"), tc.want)
		})
	}
}

// TestComposeOverrides loads the repository's compose file with the variables its header
// documents: BIND_ADDR moves every published port to another interface, and each
// *_PORT variable moves its host port.
func TestComposeOverrides(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	env := types.Mapping{"BIND_ADDR": "0.0.0.0"}
	want := map[string]map[uint32]string{ // service -> container port -> host port
		"postgres":   {5432: "15432"},
		"rabbitmq":   {5672: "15672", 15672: "25672"},
		"command":    {8080: "18080"},
		"query":      {8081: "18081"},
		"consumer":   {8082: "18082"},
		"console":    {8083: "18083"},
		"prometheus": {9090: "19090"},
		"grafana":    {3000: "13000"},
	}
	vars := map[uint32]string{5432: "PG_PORT", 5672: "MQ_PORT", 15672: "MQ_UI_PORT", 8080: "COMMAND_PORT",
		8081: "QUERY_PORT", 8082: "CONSUMER_PORT", 8083: "CONSOLE_PORT", 9090: "PROMETHEUS_PORT", 3000: "GRAFANA_PORT"}
	for _, ports := range want {
		for target, host := range ports {
			env[vars[target]] = host
		}
	}
	proj, err := loadCompose(root, filepath.Join(root, "docker-compose.yml"), env)
	require.NoError(t, err)
	for name, ports := range want {
		got := map[uint32]string{}
		for _, pc := range proj.Services[name].Ports {
			require.Equal(t, "0.0.0.0", pc.HostIP, "%s port %d", name, pc.Target)
			got[pc.Target] = pc.Published
		}
		require.Equal(t, ports, got, name)
	}
}

func TestMissingFilesAreReported(t *testing.T) {
	t.Parallel()
	_, problems := Check(t.TempDir())
	all := strings.Join(problems, "\n")
	for _, want := range []string{"no manifests found", "docker-compose.yml", "deployments/prometheus.yml", "mtm.json", "deployments/Dockerfile", "no metric definitions found"} {
		require.Contains(t, all, want)
	}
}

// TestStagesFor resolves the ARG scopes as BuildKit does: global ARGs in FROM only, a
// stage's ARG without default takes the global value and is inherited by stages based on
// it, build arguments win over defaults.
func TestStagesFor(t *testing.T) {
	t.Parallel()
	ins := parseDockerfile(`ARG BASE=alpine:3
ARG SERVICE
ARG UNSEEN=x
FROM ${BASE} AS one
ARG SERVICE
ARG PORT=80
RUN echo ${SERVICE} ${UNSEEN} $PORT
FROM one AS ${SERVICE}
EXPOSE ${PORT}
FROM ${SERVICE}
`)
	stages := stagesFor(ins, map[string]string{"SERVICE": "query", "PORT": "81"})
	require.Len(t, stages, 3)
	require.Equal(t, stage{Name: "one", Base: "alpine:3", Parent: -1, Ins: []instruction{{"RUN", "echo query  81"}}}, stages[0])
	require.Equal(t, stage{Name: "query", Base: "one", Parent: 0, Ins: []instruction{{"EXPOSE", "81"}}}, stages[1])
	require.Equal(t, stage{Base: "query", Parent: 1}, stages[2])
	require.Equal(t, []stage{stages[2], stages[1], stages[0]}, chain(stages))
}

func TestBalanced(t *testing.T) {
	t.Parallel()
	require.True(t, balanced(`sum by (a) (rate(x{b=~"(c|d)"}[5m]))`))
	require.False(t, balanced(`sum(rate(x[5m])`))
	require.False(t, balanced(`x{a="b}`))
	require.False(t, balanced(`x)`))
	require.False(t, balanced(""))
}

func TestPromQLMetrics(t *testing.T) {
	t.Parallel()
	cases := map[string][]string{
		`sum by (le, job) (rate(http_request_duration_seconds_bucket{route!~"/a|/b"}[$__rate_interval]))`: {"http_request_duration_seconds_bucket"},
		"max by (tenant_id) (a) > 60\nunless on (tenant_id) max by (tenant_id) (b) == 1":                  {"a", "b"},
		`sum(rate(x[5m])) by (job) / ignoring (le) group_left (instance) y`:                               {"x", "y"},
		`x offset 5m > bool 1`: {"x"},
		`topk(10, max by (tenant_id) (z{tenant_id=~"$tenant", q="a}b"}))`:      {"z"},
		`label_replace(up, "dst", "$1", "src", "(.*)")`:                        {"up"},
		"# a comment naming nothing\nfoo":                                      {"foo"},
		`histogram_quantile(0.99, sum without (pod) (rate(m_bucket[1h:30s])))`: {"m_bucket"},
		`ns:rule:rate5m * on (a) group_left b`:                                 {"ns:rule:rate5m", "b"},
		`1e3 * Inf + NaN - 0x1f`:                                               nil,
	}
	for expr, want := range cases {
		require.Equal(t, want, promqlMetrics(expr), expr)
	}
}

// TestDefinedMetrics reads the repository's own metric definitions: literals, a
// constant (the projector's lag gauge), histogram series, and no other Name field.
func TestDefinedMetrics(t *testing.T) {
	t.Parallel()
	var p problems
	defined := definedMetrics(repoRoot, &p)
	require.Empty(t, p)
	for _, m := range []string{"service_ready", "messages_processed_total", "query_projection_lag_events",
		"http_request_duration_seconds", "http_request_duration_seconds_bucket", "consumer_message_processing_seconds_sum"} {
		require.True(t, defined[m], m)
	}
	require.False(t, defined["tenant_workers_current_bucket"], "a gauge has no buckets")
	require.False(t, defined["postgres"], "a lifecycle component's Name is no metric")
	require.Equal(t, []string{"nope_total"}, undefinedMetrics(`rate(nope_total[1m]) + up + go_goroutines + tenant_workers_current`, defined))
}
