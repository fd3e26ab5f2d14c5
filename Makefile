# Multi-Tenant Messaging. `make run` starts the system, `make test` tests it, `make` lists the targets.
SHELL := /bin/bash
GO    ?= go
# Every workspace module's packages: go test does not cross modules on its own.
MODULES := $(shell $(GO) list -m -f '{{.Dir}}/...')
SERVICES := command consumer query console
# Services with an HTTP API document (make swagger, make lint).
API_SERVICES := command query consumer
# The OpenAPI linter make lint runs through npx (Node.js); redocly.yaml configures it.
REDOCLY_VERSION := 2.77.0
comma := ,
TEST_FLAGS ?= -count=1 -timeout 20m
# Packages that run goroutines of their own: `make race` runs their tests, integration
# tests included, under the race detector.
RACE_PKGS := ./services/consumer/internal/consumer ./services/consumer/internal/amqpsub \
	./services/consumer/internal/membership \
	./services/consumer/internal/store ./services/query/internal/projector \
	./platform/lifecycle ./platform/eventstore ./platform/httpserver \
	./services/command/internal/broker ./services/command/internal/ratelimit \
	./services/command/internal/tenant ./platform/health

# Fuzz targets as package:Target; `make fuzz` runs each for FUZZTIME (go test -fuzz takes
# one package and one target per run). Their seed corpora also run in every `make test`.
FUZZ_TARGETS := ./projections/cursor:FuzzDecode ./platform/payload:FuzzCheck ./events:FuzzDecode \
	./platform/config:FuzzLoad ./platform/auth:FuzzVerify
FUZZTIME ?= 5s

.DEFAULT_GOAL := help
.PHONY: help build run test test-unit test-cluster race fuzz deps migrate replay bench chaos lint swagger swagger-one tidy clean

help: ## this list (the default goal)
	@echo "usage: make <target>   (README.md explains each)"
	@awk 'BEGIN { FS = ":[^#]*## " } /^[a-zA-Z0-9_-]+:[^#]*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

build: ## bin/command, bin/consumer, bin/query, bin/console, bin/mtmctl
	@mkdir -p bin
	$(GO) build -o bin/ $(addprefix ./services/,$(SERVICES)) ./cmd/mtmctl

deps: ## make sure Postgres and RabbitMQ are reachable
	@./scripts/deps.sh

run: deps build ## start the three services and the console on :8083 (Ctrl+C stops them)
	@./scripts/run.sh

migrate: deps build ## apply database migrations
	./bin/command -migrate

replay: deps build ## rebuild the query-side read models from the event store
	./bin/query -replay

test: deps ## unit and integration tests of every module against real Postgres and RabbitMQ
	$(GO) test $(TEST_FLAGS) -tags=integration $(MODULES)

test-cluster: deps ## failover against a throwaway 3-node RabbitMQ cluster (scripts/rabbit-cluster.sh; about 75 s)
	$(GO) test -count=1 -tags=integration,cluster -run TestCluster -v ./e2e/

test-unit: ## tests that need no server
	$(GO) test $(TEST_FLAGS) $(MODULES)

race: deps ## tests of the concurrent packages (integration included) under the race detector
	$(GO) test $(TEST_FLAGS) -race -tags=integration $(RACE_PKGS)

fuzz: ## run each fuzz target for FUZZTIME (default 5s): cursors, payloads, events, config, tokens
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz: $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

chaos: deps ## stop and restart the local Postgres and RabbitMQ under load (disturbs other users of them)
	$(GO) test -count=1 -tags=integration,chaos -run TestSurvivesRealRestarts -v ./e2e/

bench: deps build ## benchmark harness against the real services
	$(GO) run ./tools/bench $(BENCH_FLAGS)

lint: lint-deploy bin/golangci-lint ## gofmt, go vet, golangci-lint (pinned in tools/lint), deployment checks, API documents current and linted
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags=integration $(MODULES)
	@for d in $$($(GO) list -m -f '{{.Dir}}') $(CURDIR)/tools/lint; do (cd $$d && GOWORK=off $(GO) mod tidy -diff >/dev/null) || { echo "$$d: go.mod/go.sum not tidy: run make tidy"; exit 1; }; done
	@for d in $$($(GO) list -m -f '{{.Dir}}'); do (cd $$d && $(CURDIR)/bin/golangci-lint run --allow-serial-runners --config $(CURDIR)/.golangci.yml ./...) || exit 1; done
	@for s in $(API_SERVICES); do tmp=$$(mktemp -d); \
		$(MAKE) --no-print-directory swagger-one S=$$s OUT=$$tmp SWAG_FLAGS=--quiet || exit 1; \
		for f in swagger.json openapi.json; do cmp -s $$tmp/$$f services/$$s/docs/$$f || { echo "services/$$s/docs/$$f is stale: run make swagger"; exit 1; }; done; \
		rm -rf $$tmp; done
	@for s in $(API_SERVICES); do echo "redocly lint services/$$s/docs/openapi.json"; \
		npx --yes @redocly/cli@$(REDOCLY_VERSION) lint --config redocly.yaml --format stylish services/$$s/docs/openapi.json || exit 1; done

# golangci-lint stays out of the workspace (its dependencies would move ours); the version
# is pinned by the tool directive in tools/lint/go.mod.
bin/golangci-lint: tools/lint/go.mod
	@mkdir -p bin
	@echo "bin/golangci-lint: building the pinned golangci-lint (once; a few minutes)"
	cd tools/lint && GOWORK=off $(GO) build -o $(CURDIR)/bin/golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint

swagger: ## regenerate the API docs (Swagger 2 and OpenAPI 3) from the annotations
	@for s in $(API_SERVICES); do $(MAKE) --no-print-directory swagger-one S=$$s OUT=$(CURDIR)/services/$$s/docs || exit 1; done

# swagger-one writes service S's documents into OUT: swag reads the service and
# platform/httpserver (the probes and /metrics every service serves), every field is
# required unless omitempty or validate:"optional", and tools/openapi converts the
# result to OpenAPI 3. The consumer serves no Swagger UI, so it needs no docs.go.
swagger-one:
	cd services/$(S) && $(GO) tool swag init $(SWAG_FLAGS) -g main.go -d ./,../../platform/httpserver -o $(OUT) \
		--parseDependency --parseInternal --requiredByDefault $(if $(filter consumer,$(S)),--outputTypes json$(comma)yaml)
	$(GO) run ./tools/openapi -in $(OUT)/swagger.json -out $(OUT)/openapi.json

tidy: ## go mod tidy in every module (each builds alone with GOWORK=off)
	@for d in $$($(GO) list -m -f '{{.Dir}}') $(CURDIR)/tools/lint; do (cd $$d && GOWORK=off $(GO) mod tidy) || exit 1; done

clean: ## remove bin/
	rm -rf bin

# Deployment (deployments/, docker-compose.yml). Images are tagged as the compose file and
# deployments/k8s expect: mtm/<service>:dev.
IMAGE_REPO ?= mtm
IMAGE_TAG  ?= dev
.PHONY: images lint-deploy

images: ## mtm/<service>:dev images from deployments/Dockerfile (IMAGE_REPO, IMAGE_TAG; needs Docker + BuildKit)
	@for s in $(SERVICES); do \
		echo "images: $(IMAGE_REPO)/$$s:$(IMAGE_TAG)"; \
		DOCKER_BUILDKIT=1 docker build -f deployments/Dockerfile --build-arg SERVICE=$$s -t $(IMAGE_REPO)/$$s:$(IMAGE_TAG) . || exit 1; \
	done

lint-deploy: ## offline checks of deployments/k8s, docker-compose.yml, prometheus.yml, the alert rules, the dashboard and the Dockerfile
	$(GO) run ./tools/manifestcheck -root .
	@if command -v promtool >/dev/null; then \
		promtool check config deployments/prometheus.yml && \
		promtool check rules deployments/prometheus-alerts.yml && \
		promtool test rules deployments/prometheus-alerts.test.yml; \
	else echo "promtool not installed: alert rules checked by manifestcheck only (structure, metric names)"; fi
	@if docker compose version >/dev/null 2>&1; then docker compose config -q && echo "docker compose config: ok"; \
	elif command -v docker-compose >/dev/null; then docker-compose config -q && echo "docker-compose config: ok"; \
	else echo "docker compose not installed: compose checked by manifestcheck (compose-go) only"; fi
	@if command -v kubectl >/dev/null; then kubectl kustomize deployments/k8s >/dev/null && echo "kubectl kustomize: ok"; fi
