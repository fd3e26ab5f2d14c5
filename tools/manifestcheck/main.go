// Command manifestcheck validates the deployment files offline, with no schema download:
// the Kubernetes manifests under deployments/k8s are decoded strictly into the typed
// k8s.io/api structs (unknown fields and wrong types fail, as with kubeconform -strict)
// and checked for what the schema cannot express (probes, resources, security context,
// grace period longer than SHUTDOWN_TIMEOUT, references between objects); the compose
// file is loaded and schema-validated with compose-go (the loader `docker compose`
// itself uses); prometheus.yml, the Grafana dashboard and deployments/Dockerfile (resolved
// for each service's SERVICE build argument) get consistency checks against the
// services' names and ports. /metrics must be served on its own, unpublished METRICS_ADDR
// listener and scraped there (compose, prometheus.yml, pod annotations), and every port
// compose publishes must bind 127.0.0.1 unless BIND_ADDR says otherwise. The compose
// "cluster" profile must form one RabbitMQ cluster (shared cookie, classic peer discovery
// over exactly its nodes, a data volume each), and deployments/rabbitmq/cluster.env must
// point the services at every node with replicated quorum queues.
//
//	go run ./tools/manifestcheck -root .
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	root := flag.String("root", ".", "repository root (holds docker-compose.yml and deployments/)")
	flag.Parse()

	sum, problems := Check(*root)
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "manifestcheck:", p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "manifestcheck: %d problem(s)\n", len(problems))
		os.Exit(1)
	}
	fmt.Printf("manifestcheck: ok: %d Kubernetes objects in %d files, compose (%d services), prometheus.yml, alert rules (%d alerts), dashboard (%d panels), %s (%d images)\n",
		sum.Objects, sum.Files, sum.ComposeServices, sum.Alerts, sum.Panels, dockerfile, sum.Images)
}
