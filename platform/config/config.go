// Package config loads a service's configuration from the environment, optionally
// seeded from a YAML file named by CONFIG_FILE. The environment always wins.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v10"
	amqp "github.com/rabbitmq/amqp091-go"
	"gopkg.in/yaml.v3"

	"github.com/multitenant/mtm/platform/rabbit"
)

// Base is the configuration every service shares (README "Configuration").
type Base struct {
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres:postgres@localhost:5432/multi_tenant?sslmode=disable"`
	// RabbitMQURL is one broker URL, or the nodes of one cluster as a comma-separated
	// list: every connection fails over along it (rabbit.Conn).
	RabbitMQURL string `env:"RABBITMQ_URL" envDefault:"amqp://guest:guest@localhost:5672/"`
	HTTPAddr    string `env:"HTTP_ADDR"`
	// MetricsAddr serves /metrics on its own listener (internal network, no token);
	// unset, /metrics is on HTTP_ADDR and needs an admin token when JWT_SECRET is set.
	MetricsAddr string `env:"METRICS_ADDR"`
	JWTSecret   string `env:"JWT_SECRET"`
	// JWTMaxTTL is the longest validity a token may have left: a longer-lived token is
	// refused even when its signature is good, so a leaked token dies within a day.
	JWTMaxTTL       time.Duration `env:"JWT_MAX_TTL" envDefault:"24h"`
	JWTIssuer       string        `env:"JWT_ISSUER"`
	JWTAudience     string        `env:"JWT_AUDIENCE"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s"`
	// ShutdownDrainDelay keeps serving (not ready) this long after SIGTERM before the
	// listener closes; part of SHUTDOWN_TIMEOUT. 0 where the platform already stops routing
	// first (Kubernetes endpoint removal plus a preStop sleep).
	ShutdownDrainDelay time.Duration `env:"SHUTDOWN_DRAIN_DELAY" envDefault:"0s"`
	LogLevel           string        `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat          string        `env:"LOG_FORMAT" envDefault:"text"`
	MaxMessageBytes    int           `env:"MAX_MESSAGE_BYTES" envDefault:"262144"`
	// QueueType and DLQQueueType are the types of a new tenant's work queue and DLQ
	// (quorum or classic). The command service (on create) and the consumer (on start)
	// both declare a tenant's queues, so both read them here and must be given the same
	// values; queues that exist keep their type.
	QueueType    string `env:"QUEUE_TYPE" envDefault:"quorum"`
	DLQQueueType string `env:"DLQ_QUEUE_TYPE" envDefault:"classic"`
	// QueueReplicas is the initial replica count (x-quorum-initial-group-size) of a new
	// tenant's quorum queues; 0 leaves it to the broker. Like the queue types, the
	// command and the consumer must be given the same value, and existing queues keep
	// theirs.
	QueueReplicas int `env:"QUEUE_REPLICAS" envDefault:"0"`
}

// MinJWTSecretBytes is the shortest HS256 secret accepted: RFC 7518 asks for a key at
// least as long as the hash (32 bytes); a short one can be brute-forced offline from any
// token.
const MinJWTSecretBytes = 32

// Validator is implemented by service configs that check more than Base.
type Validator interface {
	Validate() error
}

// yamlFile mirrors the seed's configs/config.example.yaml keys.
type yamlFile struct {
	RabbitMQ struct {
		URL string `yaml:"url"`
	} `yaml:"rabbitmq"`
	Database struct {
		URL string `yaml:"url"`
	} `yaml:"database"`
	Workers *int `yaml:"workers"`
	Server  struct {
		Port *int `yaml:"port"`
	} `yaml:"server"`
	Security struct {
		JWTSecret string `yaml:"jwt_secret"`
	} `yaml:"security"`
}

// Load fills cfg (a struct embedding Base, or Base itself) from CONFIG_FILE and the
// environment, applies defaultAddr when HTTP_ADDR is unset, and validates it.
// Errors name the variable and the problem on one line.
func Load(cfg any, base *Base, defaultAddr string) error {
	environ, err := environment()
	if err != nil {
		return err
	}
	if err := env.ParseWithOptions(cfg, env.Options{Environment: environ}); err != nil {
		return oneLine(err, cfg)
	}
	if base.HTTPAddr == "" {
		base.HTTPAddr = defaultAddr
	}
	if err := base.Validate(); err != nil {
		return err
	}
	if v, ok := cfg.(Validator); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// environment returns the YAML file's values overlaid by the process environment.
func environment() (map[string]string, error) {
	out := map[string]string{}
	if path := os.Getenv("CONFIG_FILE"); path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("CONFIG_FILE: %w", err)
		}
		var f yamlFile
		if err := yaml.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("CONFIG_FILE %s: invalid YAML: %s", path, firstLine(err.Error()))
		}
		set := func(k, v string) {
			if v != "" {
				out[k] = v
			}
		}
		set("RABBITMQ_URL", f.RabbitMQ.URL)
		set("DATABASE_URL", f.Database.URL)
		set("JWT_SECRET", f.Security.JWTSecret)
		if f.Workers != nil {
			out["WORKERS"] = strconv.Itoa(*f.Workers)
		}
		if f.Server.Port != nil {
			out["HTTP_ADDR"] = ":" + strconv.Itoa(*f.Server.Port)
		}
	}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out, nil
}

// Validate checks the shared settings.
func (b *Base) Validate() error {
	if err := checkURL("DATABASE_URL", b.DatabaseURL, "postgres", "postgresql"); err != nil {
		return err
	}
	if err := checkBrokerURLs("RABBITMQ_URL", b.RabbitMQURL); err != nil {
		return err
	}
	if err := checkAddr("HTTP_ADDR", b.HTTPAddr); err != nil {
		return err
	}
	if b.MetricsAddr != "" {
		if err := checkAddr("METRICS_ADDR", b.MetricsAddr); err != nil {
			return err
		}
		if b.MetricsAddr == b.HTTPAddr {
			return fmt.Errorf("METRICS_ADDR: must differ from HTTP_ADDR (%s)", b.HTTPAddr)
		}
	}
	if b.JWTSecret != "" && len(b.JWTSecret) < MinJWTSecretBytes {
		return fmt.Errorf("JWT_SECRET: must be at least %d bytes (got %d); generate one with: openssl rand -base64 48", MinJWTSecretBytes, len(b.JWTSecret))
	}
	if b.JWTMaxTTL <= 0 {
		return fmt.Errorf("JWT_MAX_TTL: must be positive, got %s", b.JWTMaxTTL)
	}
	if b.ShutdownTimeout <= 0 {
		return fmt.Errorf("SHUTDOWN_TIMEOUT: must be positive, got %s", b.ShutdownTimeout)
	}
	if b.ShutdownDrainDelay < 0 || b.ShutdownDrainDelay >= b.ShutdownTimeout {
		return fmt.Errorf("SHUTDOWN_DRAIN_DELAY: must be at least 0 and less than SHUTDOWN_TIMEOUT (%s), got %s", b.ShutdownTimeout, b.ShutdownDrainDelay)
	}
	if b.MaxMessageBytes < 1 {
		return fmt.Errorf("MAX_MESSAGE_BYTES: must be positive, got %d", b.MaxMessageBytes)
	}
	for _, v := range []struct{ name, value string }{{"QUEUE_TYPE", b.QueueType}, {"DLQ_QUEUE_TYPE", b.DLQQueueType}} {
		if v.value != "quorum" && v.value != "classic" {
			return fmt.Errorf("%s: unknown queue type %q (want quorum or classic)", v.name, v.value)
		}
	}
	if b.QueueReplicas < 0 || b.QueueReplicas > rabbit.MaxReplicas {
		return fmt.Errorf("QUEUE_REPLICAS: must be between 0 (the broker's default) and %d, got %d", rabbit.MaxReplicas, b.QueueReplicas)
	}
	switch strings.ToLower(b.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("LOG_LEVEL: unknown level %q (want debug, info, warn or error)", b.LogLevel)
	}
	switch strings.ToLower(b.LogFormat) {
	case "text", "json":
	default:
		return fmt.Errorf("LOG_FORMAT: unknown format %q (want text or json)", b.LogFormat)
	}
	return nil
}

func checkURL(name, raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// The parser's message quotes the URL, password included: never echo it.
		return fmt.Errorf("%s: not a valid URL (percent-encode special characters in the password)", name)
	}
	for _, s := range schemes {
		if u.Scheme == s {
			if u.Host == "" {
				return fmt.Errorf("%s: URL has no host", name)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: scheme must be %s, got %q", name, strings.Join(schemes, " or "), u.Scheme)
}

// checkBrokerURLs checks a comma-separated list of broker nodes: each an amqp or amqps
// URL with a host, all on the same vhost (the services use one). A problem names the
// element's position, never its text (it may carry a password).
func checkBrokerURLs(name, raw string) error {
	urls := rabbit.SplitURLs(raw)
	vhost := ""
	for i, u := range urls {
		where := name
		if len(urls) > 1 {
			where = fmt.Sprintf("%s: URL %d of %d", name, i+1, len(urls))
		}
		if u == "" {
			return fmt.Errorf("%s: empty (want one amqp:// or amqps:// URL, or several separated by commas)", where)
		}
		if err := checkURL(where, u, "amqp", "amqps"); err != nil {
			return err
		}
		uri, err := amqp.ParseURI(u)
		if err != nil {
			// Its message can quote the URL: never echo it.
			return fmt.Errorf("%s: not a valid AMQP URL", where)
		}
		if i == 0 {
			vhost = uri.Vhost
		} else if uri.Vhost != vhost {
			return fmt.Errorf("%s: vhost %q differs from the first URL's %q: every node must name the same vhost", where, uri.Vhost, vhost)
		}
	}
	return nil
}

func checkAddr(name, addr string) error {
	if _, port, ok := strings.Cut(addr, ":"); !ok || !validPort(port) {
		return fmt.Errorf("%s: %q is not host:port with a port in 1..65535", name, addr)
	}
	return nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// oneLine turns env's aggregate error into "VAR: problem" lines joined by "; ".
func oneLine(err error, cfg any) error {
	var agg env.AggregateError
	if errors.As(err, &agg) {
		parts := make([]string, 0, len(agg.Errors))
		for _, e := range agg.Errors {
			var pe env.ParseError
			if errors.As(e, &pe) {
				parts = append(parts, fmt.Sprintf("%s: cannot parse as %s", envName(reflect.TypeOf(cfg), pe.Name), pe.Type))
				continue
			}
			parts = append(parts, firstLine(e.Error()))
		}
		return errors.New(strings.Join(parts, "; "))
	}
	return errors.New(firstLine(err.Error()))
}

// envName finds the variable of a (possibly embedded) field for error messages.
func envName(t reflect.Type, field string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return field
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Name == field {
			if tag, _, _ := strings.Cut(f.Tag.Get("env"), ","); tag != "" {
				return tag
			}
		}
		if f.Anonymous {
			if name := envName(f.Type, field); name != field {
				return name
			}
		}
	}
	return field
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
