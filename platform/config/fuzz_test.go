package config

import (
	"os"
	"strings"
	"testing"
)

// fuzzVars is every variable svcConfig reads; the fuzzer picks one by index.
var fuzzVars = []string{
	"DATABASE_URL", "RABBITMQ_URL", "HTTP_ADDR", "METRICS_ADDR", "JWT_SECRET", "JWT_MAX_TTL",
	"JWT_ISSUER", "JWT_AUDIENCE", "SHUTDOWN_TIMEOUT", "SHUTDOWN_DRAIN_DELAY", "LOG_LEVEL",
	"LOG_FORMAT", "MAX_MESSAGE_BYTES", "EXTRA_KNOB", "WORKERS", "MAX_WORKERS", "QUEUE_REPLICAS",
}

// FuzzLoad sets one variable to an arbitrary value over an otherwise default
// environment. Load must never panic, and a refusal must name that variable, so an
// operator can tell which setting to fix (every other variable holds its valid default).
func FuzzLoad(f *testing.F) {
	for i, v := range []string{
		"postgres://u:p@db:5432/x", "amqp://u:p%zz@mq/", ":0", ":8080", "short", "-1h", "", "x", "1ns",
		"30s", "DEBUG", "yaml", "0", "9223372036854775808", "1e3", "localhost:65536",
	} {
		f.Add(uint8(i), v)
	}
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		if strings.ContainsRune(value, 0) {
			return // the environment cannot hold NUL
		}
		for _, k := range append([]string{"CONFIG_FILE"}, fuzzVars...) {
			t.Setenv(k, "")
			if err := os.Unsetenv(k); err != nil {
				t.Fatal(err)
			}
		}
		name := fuzzVars[int(which)%len(fuzzVars)]
		t.Setenv(name, value)
		var c svcConfig
		err := Load(&c, &c.Base, ":8081")
		if err != nil && !strings.HasPrefix(err.Error(), name+":") {
			t.Fatalf("%s=%q refused without naming it: %v", name, value, err)
		}
	})
}
