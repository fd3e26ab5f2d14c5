package main

import (
	"cmp"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"sigs.k8s.io/yaml"
)

// ruleFile is Prometheus' rule file format. Decoding is strict, so a misspelt key (expresion,
// anotations) fails here instead of being dropped. Without promtool this is the check the
// rules get: the expressions are not parsed (Prometheus' parser is the prometheus module
// itself, far heavier than this tool), only bracket-balanced and their metric names
// checked against the ones the services define.
type ruleFile struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name        string            `json:"name"`
	Interval    string            `json:"interval,omitempty"`
	QueryOffset string            `json:"query_offset,omitempty"`
	Limit       int               `json:"limit,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Rules       []rule            `json:"rules"`
}

type rule struct {
	Alert         string            `json:"alert,omitempty"`
	Record        string            `json:"record,omitempty"`
	Expr          string            `json:"expr"`
	For           string            `json:"for,omitempty"`
	KeepFiringFor string            `json:"keep_firing_for,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	alertName  = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
)

// severities are the values of an alert's severity label that routing understands.
var severities = []string{"warning", "critical"}

// checkRuleFiles checks prometheus.yml's rule_files: each is a path relative to
// prometheus.yml (so promtool check config resolves it in the repository as Prometheus
// does in the container), mounted by docker-compose.yml next to prometheus.yml, and a
// valid rule file. Together the files must alert on every requiredAlerts metric. It
// returns the number of alerting rules.
func checkRuleFiles(root string, ruleFiles []string, promMounts map[string]string, defined map[string]bool, p *problems) int {
	const where = "deployments/prometheus.yml"
	if len(ruleFiles) == 0 {
		p.addf("%s: rule_files is empty: it must load the alert rules (deployments/prometheus-alerts.yml)", where)
		return 0
	}
	configDir := ""
	for target, source := range promMounts {
		if source == "deployments/prometheus.yml" {
			configDir = path.Dir(target)
		}
	}
	alerts := 0
	var exprs []string
	for _, f := range ruleFiles {
		if path.IsAbs(f) || strings.Contains(f, "*") || strings.HasPrefix(path.Clean(f), "..") {
			p.addf("%s: rule_files entry %q must be a plain path relative to prometheus.yml, in deployments/", where, f)
			continue
		}
		rel := path.Join("deployments", f)
		if configDir != "" && promMounts[path.Join(configDir, f)] != rel {
			p.addf("docker-compose.yml: prometheus must mount ./%s at %s (prometheus.yml's rule_files)", rel, path.Join(configDir, f))
		}
		n, e := checkRuleFile(filepath.Join(root, filepath.FromSlash(rel)), rel, defined, p)
		alerts += n
		exprs = append(exprs, e...)
	}
	for _, m := range requiredAlerts {
		if !slices.ContainsFunc(exprs, func(e string) bool { return slices.Contains(promqlMetrics(e), m) }) {
			p.addf("%s: no alert uses %s", where, m)
		}
	}
	return alerts
}

// checkRuleFile checks one rule file and returns its number of alerts and the alerts'
// expressions.
func checkRuleFile(file, where string, defined map[string]bool, p *problems) (int, []string) {
	raw, err := os.ReadFile(file)
	if err != nil {
		p.addf("%s: %v", where, err)
		return 0, nil
	}
	var rf ruleFile
	if err := yaml.UnmarshalStrict(raw, &rf); err != nil {
		p.addf("%s: %v", where, err)
		return 0, nil
	}
	if len(rf.Groups) == 0 {
		p.addf("%s: no groups", where)
	}
	groups := map[string]bool{}
	alerts := map[string]bool{}
	var exprs []string
	for _, g := range rf.Groups {
		if g.Name == "" || groups[g.Name] {
			p.addf("%s: group name %q empty or repeated", where, g.Name)
		}
		groups[g.Name] = true
		for _, d := range []string{g.Interval, g.QueryOffset} {
			if d != "" && !promDuration.MatchString(d) {
				p.addf("%s: group %s: %q is not a Prometheus duration", where, g.Name, d)
			}
		}
		if len(g.Rules) == 0 {
			p.addf("%s: group %s has no rules", where, g.Name)
		}
		for i, r := range g.Rules {
			name := cmp.Or(r.Alert, r.Record, "rule "+strconv.Itoa(i+1))
			at := where + ": group " + g.Name + ": " + name
			switch {
			case (r.Alert == "") == (r.Record == ""):
				p.addf("%s: set exactly one of alert and record", at)
			case r.Record != "":
				if !metricName.MatchString(r.Record) {
					p.addf("%s: record %q is not a valid metric name", at, r.Record)
				}
				if r.For != "" || r.KeepFiringFor != "" || len(r.Annotations) > 0 {
					p.addf("%s: a recording rule takes no for, keep_firing_for or annotations", at)
				}
				if defined != nil { // a recorded series is defined for the dashboard and later rules
					defined[r.Record] = true
				}
			default:
				checkAlert(at, r, alerts, p)
				exprs = append(exprs, r.Expr)
			}
			if strings.TrimSpace(r.Expr) == "" {
				p.addf("%s: expr is empty", at)
			} else if !balanced(r.Expr) {
				p.addf("%s: unbalanced brackets or quotes in expr", at)
			}
			for _, m := range undefinedMetrics(r.Expr, defined) {
				p.addf("%s: expr uses metric %s, which no service defines", at, m)
			}
			for k := range r.Labels {
				if !labelName.MatchString(k) {
					p.addf("%s: label name %q is not valid", at, k)
				}
			}
		}
	}
	return len(alerts), exprs
}

// checkAlert applies the project's rules for an alert: a CamelCase name used once, a
// for duration (no alert fires on one evaluation), a routable severity and a summary.
func checkAlert(at string, r rule, seen map[string]bool, p *problems) {
	if !alertName.MatchString(r.Alert) || seen[r.Alert] {
		p.addf("%s: alert name must be CamelCase and used once", at)
	}
	seen[r.Alert] = true
	if r.For == "" {
		p.addf("%s: for is required", at)
	}
	for _, d := range []string{r.For, r.KeepFiringFor} {
		if d != "" && !promDuration.MatchString(d) {
			p.addf("%s: %q is not a Prometheus duration", at, d)
		}
	}
	if !slices.Contains(severities, r.Labels["severity"]) {
		p.addf("%s: label severity %q, want one of %s", at, r.Labels["severity"], strings.Join(severities, ", "))
	}
	if strings.TrimSpace(r.Annotations["summary"]) == "" {
		p.addf("%s: annotation summary is required", at)
	}
	for k, v := range r.Annotations {
		if !labelName.MatchString(k) {
			p.addf("%s: annotation name %q is not valid", at, k)
		}
		if strings.Count(v, "{{") != strings.Count(v, "}}") {
			p.addf("%s: annotation %s: unbalanced {{ }}", at, k)
		}
	}
}

// builtinMetric reports series no service defines but every target has: Prometheus'
// own per-target series and the Go and process collectors platform/metrics registers,
// plus the broker's own metrics (brokerMetrics).
func builtinMetric(name string) bool {
	return name == "up" || name == "ALERTS" || name == "ALERTS_FOR_STATE" ||
		strings.HasPrefix(name, "scrape_") || strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") ||
		slices.Contains(brokerMetrics, name)
}

// brokerMetrics are the series of RabbitMQ's rabbitmq_prometheus plugin (its
// metrics.md, "Generic" and "Queues") that the dashboard and alerts may use. Listed one
// by one rather than by prefix, so a misspelt rabbitmq_ name still fails the check.
var brokerMetrics = []string{
	"rabbitmq_process_open_fds",              // file handles in use (3.x: the file-handle cache)
	"rabbitmq_process_max_fds",               // their limit
	"rabbitmq_process_resident_memory_bytes", // broker memory
	"rabbitmq_resident_memory_limit_bytes",   // the memory high watermark
	"rabbitmq_queues",                        // queues on the node
	"rabbitmq_connections",                   // connections open
}

// undefinedMetrics returns the metric names expr selects that are neither defined nor
// built in; nothing when defined is nil (no Go sources to compare with).
func undefinedMetrics(expr string, defined map[string]bool) []string {
	if defined == nil {
		return nil
	}
	var out []string
	for _, m := range promqlMetrics(expr) {
		if !defined[m] && !builtinMetric(m) && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// promqlKeywords are PromQL's operators, modifiers and aggregations: words that read like
// identifiers but never name a metric (an aggregation may be followed by "by (...)"
// rather than "(").
var promqlKeywords = []string{"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
	"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
	"bottomk", "topk", "quantile", "limitk", "limit_ratio"}

// promqlGrouping are the keywords whose parenthesised list holds label names.
var promqlGrouping = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}

// promqlMetrics returns the metric names a PromQL (or Grafana-templated PromQL)
// expression selects: the identifiers outside strings, label matchers {...}, ranges
// [...] and grouping label lists, that are neither keywords nor followed by "(" (a
// function or aggregation). A lexer, not a parser: it trusts balanced() for structure.
func promqlMetrics(expr string) []string {
	rs := []rune(expr)
	var out []string
	skipTo := func(i int, closer rune) int { // index of closer, past quoted strings
		for ; i < len(rs) && rs[i] != closer; i++ {
			if q := rs[i]; q == '"' || q == '\'' || q == '`' {
				i = skipString(rs, i)
			}
		}
		return i
	}
	nextNonSpace := func(i int) int {
		for i < len(rs) && unicode.IsSpace(rs[i]) {
			i++
		}
		return i
	}
	isIdent := func(r rune, first bool) bool {
		return r == '_' || r == ':' || unicode.IsLetter(r) || (!first && unicode.IsDigit(r))
	}
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '"' || r == '\'' || r == '`':
			i = skipString(rs, i)
		case r == '{':
			i = skipTo(i+1, '}')
		case r == '[':
			i = skipTo(i+1, ']')
		case r == '#':
			i = skipTo(i, '\n')
		case r == '$' || unicode.IsDigit(r) || r == '.': // a Grafana variable, a number or duration
			for i+1 < len(rs) && (isIdent(rs[i+1], false) || rs[i+1] == '.') {
				i++
			}
		case isIdent(r, true):
			j := i
			for j+1 < len(rs) && isIdent(rs[j+1], false) {
				j++
			}
			word := string(rs[i : j+1])
			i = j
			next := nextNonSpace(j + 1)
			switch {
			case slices.Contains(promqlGrouping, strings.ToLower(word)):
				if next < len(rs) && rs[next] == '(' {
					i = skipTo(next, ')')
				}
			case slices.Contains(promqlKeywords, strings.ToLower(word)):
			case next < len(rs) && rs[next] == '(':
			default:
				out = append(out, word)
			}
		}
	}
	return out
}

// skipString returns the index of the quote closing the string that opens at rs[i].
func skipString(rs []rune, i int) int {
	q := rs[i]
	for i++; i < len(rs) && rs[i] != q; i++ {
		if rs[i] == '\\' && q != '`' {
			i++
		}
	}
	return i
}

// metricOpts are the client_golang option structs whose Name is a metric name.
var metricOpts = map[string][]string{
	"CounterOpts":   nil,
	"GaugeOpts":     nil,
	"HistogramOpts": {"_bucket", "_count", "_sum"},
	"SummaryOpts":   {"_count", "_sum"},
}

// definedMetrics returns the metric names the services expose, read from the Go sources
// under services/ and platform/ (not tests): every prometheus.{Counter,Gauge,Histogram,
// Summary}Opts literal's Namespace_Subsystem_Name, each part a string literal or a string
// constant declared in those sources, plus a histogram's _bucket, _count and _sum series.
// A name built at run time is not seen, and is then reported as undefined where used.
// Returns nil, reported, when there are no sources to read.
func definedMetrics(root string, p *problems) map[string]bool {
	fset := token.NewFileSet()
	var files []*ast.File
	for _, dir := range []string{"services", "platform"} {
		top, err := filepath.EvalSymlinks(filepath.Join(root, dir))
		if err != nil {
			continue
		}
		err = filepath.WalkDir(top, func(file string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(file, ".go") || strings.HasSuffix(file, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
			if err == nil {
				files = append(files, f)
			}
			return err
		})
		if err != nil {
			p.addf("metric definitions: %v", err)
		}
	}
	consts := stringConsts(files)
	defined := map[string]bool{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.CompositeLit); ok {
				addMetric(lit, consts, defined)
			}
			return true
		})
	}
	if len(defined) == 0 {
		p.addf("no metric definitions found in services/ or platform/: metric names in the dashboard and alert rules are not checked")
		return nil
	}
	return defined
}

// stringConsts maps each string constant's name to its value; a name declared with two
// values is left out rather than guessed (the sources are several packages).
func stringConsts(files []*ast.File) map[string]string {
	consts := map[string]string{}
	clash := map[string]bool{}
	for _, f := range files {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					v, ok := stringLit(vs.Values[i])
					if !ok {
						continue
					}
					if old, seen := consts[name.Name]; seen && old != v {
						clash[name.Name] = true
					}
					consts[name.Name] = v
				}
			}
		}
	}
	for name := range clash {
		delete(consts, name)
	}
	return consts
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// addMetric records the metric a prometheus.*Opts literal defines.
func addMetric(lit *ast.CompositeLit, consts map[string]string, defined map[string]bool) {
	sel, ok := lit.Type.(*ast.SelectorExpr)
	if !ok {
		return
	}
	if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" {
		return
	}
	suffixes, ok := metricOpts[sel.Sel.Name]
	if !ok {
		return
	}
	parts := map[string]string{}
	for _, e := range lit.Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		key, ok := kv.Key.(*ast.Ident)
		if !ok {
			continue
		}
		switch v := kv.Value.(type) {
		case *ast.BasicLit:
			parts[key.Name], _ = stringLit(v)
		case *ast.Ident: // a constant of the same package
			parts[key.Name] = consts[v.Name]
		case *ast.SelectorExpr: // pkg.Constant
			parts[key.Name] = consts[v.Sel.Name]
		}
	}
	if parts["Name"] == "" {
		return
	}
	var name []string
	for _, k := range []string{"Namespace", "Subsystem", "Name"} {
		if parts[k] != "" {
			name = append(name, parts[k])
		}
	}
	full := strings.Join(name, "_")
	defined[full] = true
	for _, s := range suffixes {
		defined[full+s] = true
	}
}
