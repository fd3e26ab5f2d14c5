package httpserver

import (
	"fmt"
	"net/http"
)

// ProblemContentType is the RFC 9457 media type of every error body.
const ProblemContentType = "application/problem+json"

// FieldError names one invalid field of a request body.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Problem is an RFC 9457 problem details body; handlers return it as an error.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Code     string       `json:"code"`
	Errors   []FieldError `json:"errors,omitempty"`
	// Headers are extra response headers (WWW-Authenticate, Retry-After).
	Headers map[string]string `json:"-"`
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Code, p.Detail) }

// NewProblem builds a problem; code is a stable machine-readable string such as "tenant_not_found".
func NewProblem(status int, code, detail string) *Problem {
	return &Problem{
		Type:   "https://multi-tenant-messaging.dev/problems/" + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Code:   code,
	}
}

// WithErrors attaches field errors.
func (p *Problem) WithErrors(errs ...FieldError) *Problem {
	p.Errors = append(p.Errors, errs...)
	return p
}

// WithHeader attaches a response header.
func (p *Problem) WithHeader(k, v string) *Problem {
	if p.Headers == nil {
		p.Headers = map[string]string{}
	}
	p.Headers[k] = v
	return p
}

// Common problems.
func BadRequest(code, detail string) *Problem { return NewProblem(http.StatusBadRequest, code, detail) }
func NotFound(code, detail string) *Problem   { return NewProblem(http.StatusNotFound, code, detail) }
func Unprocessable(detail string, errs ...FieldError) *Problem {
	return NewProblem(http.StatusUnprocessableEntity, "validation_failed", detail).WithErrors(errs...)
}
