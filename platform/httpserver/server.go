// Package httpserver builds the Fiber app every service runs: problem+json errors,
// request ids, panic recovery, per-route latency metrics, /healthz, /readyz and /metrics.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/multitenant/mtm/platform/health"
)

// Options configure a Server.
type Options struct {
	Service   string
	Addr      string
	Log       *slog.Logger
	Readiness *health.Readiness
	Registry  *prometheus.Registry
	// BodyLimit in bytes; larger bodies get 413. Default 1 MiB.
	BodyLimit int
	// Auth authenticates requests; it runs before every route, /metrics included.
	Auth fiber.Handler
	// MetricsAddr, when set, serves /metrics on a separate listener (for an internal
	// network, without authentication) and not on Addr.
	MetricsAddr string
}

// Server is a Fiber app with the platform middleware and probes installed.
type Server struct {
	App  *fiber.App
	opts Options
	ln   net.Listener

	metrics     *http.Server // nil unless MetricsAddr is set
	metricsLn   net.Listener
	metricsDone chan struct{}
}

// New builds the app. Routes added to s.App afterwards get every middleware.
func New(opts Options) *Server {
	if opts.BodyLimit == 0 {
		opts.BodyLimit = 1 << 20
	}
	s := &Server{opts: opts}
	app := fiber.New(fiber.Config{
		AppName:               opts.Service,
		DisableStartupMessage: true,
		BodyLimit:             opts.BodyLimit,
		ErrorHandler:          s.handleError,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           60 * time.Second,
	})
	app.Use(requestID)
	app.Use(refuseAmbiguousLength)
	app.Use(secureHeaders)
	// Outside recover, so a panic's 500 is on the span.
	app.Use(traceRequests)
	app.Use(recover.New(recover.Config{EnableStackTrace: true, StackTraceHandler: func(c *fiber.Ctx, e any) {
		opts.Log.Error("panic in handler", "panic", e, "request_id", RequestID(c), "path", c.Path())
	}}))
	app.Use(s.observe(opts.Registry))
	if opts.Auth != nil {
		app.Use(opts.Auth)
	}

	app.Get("/healthz", healthz)
	app.Get("/readyz", s.readyz)
	if opts.Registry != nil {
		h := promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{Registry: opts.Registry})
		if opts.MetricsAddr == "" {
			app.Get("/metrics", metricsHandler(h))
		} else {
			mux := http.NewServeMux()
			mux.Handle("GET /metrics", h)
			s.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		}
	}
	s.App = app
	return s
}

// RequestID returns the request id the middleware assigned.
func RequestID(c *fiber.Ctx) string {
	if v, ok := c.Locals("requestid").(string); ok {
		return v
	}
	return ""
}

func (s *Server) observe(reg *prometheus.Registry) fiber.Handler {
	if reg == nil {
		return func(c *fiber.Ctx) error { return c.Next() }
	}
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "HTTP request latency by route, method and status.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method", "status"})
	reg.MustRegister(hist)
	return func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		status := c.Response().StatusCode()
		if err != nil {
			// The error handler runs after this middleware; derive the status it will write.
			status = statusOf(err)
		}
		route := routeOf(c)
		// c.Method() aliases a pooled buffer; the registry keeps label strings, so copy it.
		hist.WithLabelValues(route, strings.Clone(c.Method()), strconv.Itoa(status)).Observe(time.Since(start).Seconds())
		return err
	}
}

func statusOf(err error) int {
	var p *Problem
	if errors.As(err, &p) {
		return p.Status
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return http.StatusInternalServerError
}

// Probe is the body of /healthz and /readyz.
type Probe struct {
	// Status: ok (/healthz); ready or not ready (/readyz).
	Status string `json:"status" example:"ready" enums:"ok,ready,not ready"`
	// Checks names each readiness check with ok or unavailable (and shutdown: draining
	// while the service stops); /readyz only.
	Checks map[string]string `json:"checks,omitempty"`
}

// The probes and /metrics are documented here, once, for every service's spec (swag
// reads this package next to the service's own).

// healthz godoc
//
//	@Summary		Liveness probe
//	@Description	200 while the process serves HTTP; it checks no dependency. Public: no token needed.
//	@ID				healthz
//	@Tags			operations
//	@Produce		json
//	@Success		200	{object}	Probe
//	@Header			all	{string}	X-Request-ID	"The request id"
//	@Router			/healthz [get]
func healthz(c *fiber.Ctx) error {
	return c.JSON(Probe{Status: "ok"})
}

// metricsHandler godoc
//
//	@Summary		Prometheus metrics
//	@Description	The service's metrics in the Prometheus text format. Needs an admin token when JWT_SECRET is set; not served here at all when METRICS_ADDR moves it to a listener of its own.
//	@ID				metrics
//	@Tags			operations
//	@Security		BearerAuth
//	@Produce		plain,application/problem+json
//	@Success		200	{string}	string				"Prometheus text exposition format"
//	@Failure		401	{object}	Problem				"No or an invalid bearer token"
//	@Failure		403	{object}	Problem				"Not an admin token"
//	@Header			401,403	{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			all	{string}	X-Request-ID		"The request id"
//	@Router			/metrics [get]
func metricsHandler(h http.Handler) fiber.Handler {
	return adaptor.HTTPHandler(h)
}

// readyz godoc
//
//	@Summary		Readiness probe
//	@Description	200 when every dependency check passes, else 503 naming the failed checks (details go to the log, never to this public body); 503 as well while the service shuts down. Public: no token needed.
//	@ID				readyz
//	@Tags			operations
//	@Produce		json
//	@Success		200	{object}	Probe
//	@Failure		503	{object}	Probe	"Not ready"
//	@Header			all	{string}	X-Request-ID	"The request id"
//	@Router			/readyz [get]
func (s *Server) readyz(c *fiber.Ctx) error {
	if s.opts.Readiness == nil {
		return c.JSON(Probe{Status: "ready"})
	}
	ok, results := s.opts.Readiness.Evaluate(c.UserContext())
	checks := map[string]string{}
	for _, r := range results {
		if r.Err != nil {
			// Details go to the log, not to the (possibly public) probe body.
			s.opts.Log.Warn("readiness check failed", "check", r.Name, "err", r.Err)
			checks[r.Name] = "unavailable"
		} else {
			checks[r.Name] = "ok"
		}
	}
	if s.opts.Readiness.Draining() {
		checks["shutdown"] = "draining"
	}
	if !ok {
		return c.Status(http.StatusServiceUnavailable).JSON(Probe{Status: "not ready", Checks: checks})
	}
	return c.JSON(Probe{Status: "ready", Checks: checks})
}

// handleError turns every error into problem+json; internal details are logged, never sent.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	var p *Problem
	var fe *fiber.Error
	switch {
	case errors.As(err, &p):
		cp := *p
		p = &cp
	case errors.As(err, &fe):
		p = fiberProblem(fe)
	default:
		s.opts.Log.Error("request failed", "err", err, "request_id", RequestID(c), "method", c.Method(), "path", c.Path())
		p = NewProblem(http.StatusInternalServerError, "internal_error", "internal error; quote request id "+RequestID(c))
	}
	if p.Instance == "" {
		p.Instance = c.OriginalURL()
	}
	for k, v := range p.Headers {
		c.Set(k, v)
	}
	c.Status(p.Status)
	if err := c.JSON(p); err != nil {
		return fmt.Errorf("write problem: %w", err)
	}
	c.Set(fiber.HeaderContentType, ProblemContentType)
	return nil
}

func fiberProblem(fe *fiber.Error) *Problem {
	switch fe.Code {
	case http.StatusNotFound:
		return NewProblem(fe.Code, "not_found", "no such resource")
	case http.StatusMethodNotAllowed:
		return NewProblem(fe.Code, "method_not_allowed", "method not allowed on this resource")
	case http.StatusRequestEntityTooLarge:
		return NewProblem(fe.Code, "body_too_large", "request body exceeds the size limit")
	case http.StatusUnsupportedMediaType:
		return NewProblem(fe.Code, "unsupported_media_type", "request body must be application/json")
	case http.StatusBadRequest:
		return NewProblem(fe.Code, "bad_request", "malformed request")
	}
	if fe.Code >= 500 {
		return NewProblem(fe.Code, "internal_error", http.StatusText(fe.Code))
	}
	return NewProblem(fe.Code, "error", fe.Message)
}

// Addr returns the bound address once Run has started listening (tests bind ":0").
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// MetricsAddr returns the metrics listener's bound address ("" unless MetricsAddr is set
// and Listen ran).
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// Listen binds the address(es); split from Run so callers can learn the ports first.
func (s *Server) Listen() error {
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.opts.Addr, err)
	}
	if s.metrics != nil {
		mln, err := net.Listen("tcp", s.opts.MetricsAddr)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen %s (METRICS_ADDR): %w", s.opts.MetricsAddr, err)
		}
		s.metricsLn = mln
	}
	s.ln = ln
	return nil
}

// Run serves until Stop. It listens first if Listen was not called.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.opts.Log.Info("http server listening", "addr", s.ln.Addr().String())
	if s.metrics != nil {
		s.opts.Log.Info("metrics listening", "addr", s.metricsLn.Addr().String())
		s.metricsDone = make(chan struct{})
		// Owned by the server: Stop shuts it down and waits for it.
		go func() {
			defer close(s.metricsDone)
			if err := s.metrics.Serve(s.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.opts.Log.Error("metrics listener failed", "err", err)
			}
		}()
	}
	if err := s.App.Listener(s.ln); err != nil {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// Stop finishes in-flight requests within ctx and closes the listener.
func (s *Server) Stop(ctx context.Context) error {
	var errs []error
	if err := s.App.ShutdownWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shutdown http: %w", err))
	}
	if s.metricsDone != nil {
		if err := s.metrics.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown metrics listener: %w", err))
		}
		<-s.metricsDone
	}
	return errors.Join(errs...)
}

// OpenAPIPath is where every service serves its OpenAPI 3 document; it is public, like
// the probes and Swagger UI.
const OpenAPIPath = "/openapi.json"

// ServeOpenAPI serves doc, the service's OpenAPI 3 document generated at build time, at
// OpenAPIPath.
func ServeOpenAPI(r fiber.Router, doc []byte) {
	r.Get(OpenAPIPath, func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(doc)
	})
}
