package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// promConfig is the subset of Prometheus' configuration this project uses; decoding is
// strict, so a misspelt key fails here instead of being ignored by Prometheus' defaults.
type promConfig struct {
	Global struct {
		ScrapeInterval     string `json:"scrape_interval,omitempty"`
		EvaluationInterval string `json:"evaluation_interval,omitempty"`
		ScrapeTimeout      string `json:"scrape_timeout,omitempty"`
	} `json:"global"`
	RuleFiles     []string `json:"rule_files,omitempty"`
	ScrapeConfigs []struct {
		JobName        string `json:"job_name"`
		MetricsPath    string `json:"metrics_path,omitempty"`
		ScrapeInterval string `json:"scrape_interval,omitempty"`
		StaticConfigs  []struct {
			Targets []string          `json:"targets"`
			Labels  map[string]string `json:"labels,omitempty"`
		} `json:"static_configs"`
	} `json:"scrape_configs"`
}

// brokerTarget is RabbitMQ's rabbitmq_prometheus endpoint on the compose network.
const brokerTarget = "rabbitmq:15692"

var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

// checkPrometheus checks prometheus.yml strictly and that it scrapes each service on the
// METRICS_ADDR port docker-compose.yml gives it (metricsPorts; a service missing there
// was reported by the compose check, and only has to be scraped at all). It returns the
// rule_files, for checkRuleFiles.
func checkPrometheus(path string, metricsPorts map[string]int, p *problems) []string {
	where := "deployments/prometheus.yml"
	raw, err := os.ReadFile(path)
	if err != nil {
		p.addf("%s: %v", where, err)
		return nil
	}
	var c promConfig
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		p.addf("%s: %v", where, err)
		return nil
	}
	for _, d := range []string{c.Global.ScrapeInterval, c.Global.EvaluationInterval, c.Global.ScrapeTimeout} {
		if d != "" && !promDuration.MatchString(d) {
			p.addf("%s: %q is not a Prometheus duration", where, d)
		}
	}
	jobs := map[string]bool{}
	var targets []string
	for _, sc := range c.ScrapeConfigs {
		if sc.JobName == "" || jobs[sc.JobName] {
			p.addf("%s: job_name %q empty or repeated", where, sc.JobName)
		}
		jobs[sc.JobName] = true
		if sc.MetricsPath != "" && !strings.HasPrefix(sc.MetricsPath, "/") {
			p.addf("%s: job %s: metrics_path %q must start with /", where, sc.JobName, sc.MetricsPath)
		}
		if sc.ScrapeInterval != "" && !promDuration.MatchString(sc.ScrapeInterval) {
			p.addf("%s: job %s: %q is not a Prometheus duration", where, sc.JobName, sc.ScrapeInterval)
		}
		scrapesService := false
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
			scrapesService = scrapesService || slices.ContainsFunc(st.Targets, func(t string) bool {
				host, _, err := net.SplitHostPort(t)
				return err == nil && isService(host)
			})
		}
		// The METRICS_ADDR listener serves /metrics and nothing else.
		if scrapesService && sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			p.addf("%s: job %s: metrics_path %q, want /metrics", where, sc.JobName, sc.MetricsPath)
		}
	}
	if !slices.Contains(targets, brokerTarget) {
		p.addf("%s: does not scrape the broker's rabbitmq_prometheus endpoint %s", where, brokerTarget)
	}
	for _, s := range services {
		if port, ok := metricsPorts[s.Name]; ok {
			if !slices.Contains(targets, composeTarget(s.Name, port)) {
				p.addf("%s: does not scrape %s (METRICS_ADDR in docker-compose.yml)", where, composeTarget(s.Name, port))
			}
		} else if !slices.ContainsFunc(targets, func(t string) bool { return strings.HasPrefix(t, s.Name+":") }) {
			p.addf("%s: does not scrape %s", where, s.Name)
		}
		// On the HTTP port /metrics is 404 once METRICS_ADDR is set, and needs an admin
		// JWT without it.
		if http := composeTarget(s.Name, s.Port); slices.Contains(targets, http) {
			p.addf("%s: scrapes %s, the HTTP port: scrape the METRICS_ADDR port instead", where, http)
		}
	}
	return c.RuleFiles
}

// dashboard is the part of a Grafana dashboard model the check reads.
type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's children
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// checkDashboard checks the dashboard's panels and their queries: brackets balance, every
// metric a query names is one the services define (defined; nil when the Go sources were
// not found, which definedMetrics reported), and every requiredMetrics is charted.
func checkDashboard(path string, defined map[string]bool, p *problems) int {
	where := filepath.ToSlash(filepath.Join("deployments", "grafana", "dashboards", filepath.Base(path)))
	raw, err := os.ReadFile(path)
	if err != nil {
		p.addf("%s: %v", where, err)
		return 0
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		p.addf("%s: %v", where, err)
		return 0
	}
	if d.UID == "" || d.Title == "" {
		p.addf("%s: uid and title are required", where)
	}
	var all []panel
	for _, pn := range d.Panels {
		all = append(all, pn)
		all = append(all, pn.Panels...)
	}
	ids := map[int]bool{}
	var exprs []string
	for _, pn := range all {
		if ids[pn.ID] {
			p.addf("%s: panel id %d repeated", where, pn.ID)
		}
		ids[pn.ID] = true
		if pn.Type == "row" {
			continue
		}
		if len(pn.Targets) == 0 {
			p.addf("%s: panel %q has no query", where, pn.Title)
		}
		var panelExprs []string
		for _, t := range pn.Targets {
			if !balanced(t.Expr) {
				p.addf("%s: panel %q: unbalanced brackets or quotes in %q", where, pn.Title, t.Expr)
			}
			panelExprs = append(panelExprs, t.Expr)
		}
		for _, m := range undefinedMetrics(strings.Join(panelExprs, "\n"), defined) {
			p.addf("%s: panel %q: no service defines metric %s", where, pn.Title, m)
		}
		exprs = append(exprs, panelExprs...)
	}
	joined := strings.Join(exprs, "\n")
	for _, m := range requiredMetrics {
		if !strings.Contains(joined, m) {
			p.addf("%s: no panel charts %s", where, m)
		}
	}
	return len(all)
}

// balanced reports whether (), [], {} nest properly and double quotes pair up: a cheap
// guard against a PromQL expression broken while editing the JSON by hand.
func balanced(expr string) bool {
	var stack []rune
	pair := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inQuote := false
	for _, r := range expr {
		switch {
		case r == '"':
			inQuote = !inQuote
		case inQuote:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case r == ')' || r == ']' || r == '}':
			if len(stack) == 0 || stack[len(stack)-1] != pair[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inQuote && expr != ""
}
