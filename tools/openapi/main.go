// Command openapi turns the Swagger 2 document swag generates from a service's
// annotations into the OpenAPI 3 document the service serves at /openapi.json.
//
// Swagger 2 cannot say everything the API does, so the conversion also states, for every
// operation, what the annotations cannot:
//   - the bearer scheme: Swagger 2 only knows an API key in the Authorization header;
//     OpenAPI 3 declares HTTP bearer with a JWT, so generated clients and Swagger UI send
//     "Bearer <token>";
//   - media types per response: swag lists one set of media types per operation (json
//     and problem+json); here successes keep application/json and errors (4xx, 5xx)
//     application/problem+json, wherever an operation declared both;
//   - response headers are sent on every such response (Swagger 2 has no "required" for
//     them), so the contract tests fail when one goes missing;
//   - an operation without @Security is public (the probes): it gets an explicit empty
//     security requirement, which swag cannot write;
//   - a nullable reference to another schema (swag's x-nullable next to allOf) also
//     names the referenced schema's type: OpenAPI 3.0 ignores nullable without a type;
//   - a property marked x-any-json (a message payload: any JSON value an AMQP producer
//     sent, not only an object) loses swag's "type: object", so it accepts any value.
//
// Usage: openapi -in docs/swagger.json -out docs/openapi.json
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
)

// Media types of the API's bodies.
const (
	mediaJSON    = "application/json"
	mediaProblem = "application/problem+json"
)

func main() {
	in := flag.String("in", "", "Swagger 2 document (swag's swagger.json)")
	out := flag.String("out", "", "OpenAPI 3 document to write")
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: openapi -in swagger.json -out openapi.json")
		os.Exit(2)
	}
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "openapi:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	raw, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("read swagger 2 document: %w", err)
	}
	b, err := Convert(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return fmt.Errorf("write openapi 3 document: %w", err)
	}
	return nil
}

// Convert turns a Swagger 2 document into the OpenAPI 3 document, indented and with a
// final newline; the same input always gives the same bytes (make lint compares them).
func Convert(swagger2 []byte) ([]byte, error) {
	var doc2 openapi2.T
	if err := json.Unmarshal(swagger2, &doc2); err != nil {
		return nil, fmt.Errorf("parse swagger 2: %w", err)
	}
	doc3, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return nil, fmt.Errorf("convert to openapi 3: %w", err)
	}
	bearer(doc3)
	nullableRefs(doc3)
	anyJSON(doc3)
	if err := responses(doc3); err != nil {
		return nil, err
	}
	if err := doc3.Validate(openapi3.NewLoader().Context); err != nil {
		return nil, fmt.Errorf("converted document is not valid openapi 3: %w", err)
	}
	b, err := json.Marshal(doc3)
	if err != nil {
		return nil, fmt.Errorf("encode openapi 3: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return nil, fmt.Errorf("indent openapi 3: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// bearer replaces an API key in the Authorization header by the HTTP bearer scheme it
// stands for.
func bearer(doc *openapi3.T) {
	if doc.Components == nil {
		return
	}
	for name, ref := range doc.Components.SecuritySchemes {
		s := ref.Value
		if s == nil || s.Type != "apiKey" || s.In != "header" || !strings.EqualFold(s.Name, "Authorization") {
			continue
		}
		doc.Components.SecuritySchemes[name] = &openapi3.SecuritySchemeRef{Value: &openapi3.SecurityScheme{
			Type: "http", Scheme: "bearer", BearerFormat: "JWT", Description: s.Description,
		}}
	}
}

// responses gives each response only the media type its status sends, and makes its
// declared headers required.
func responses(doc *openapi3.T) error {
	var errs []error
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Security == nil {
				op.Security = &openapi3.SecurityRequirements{}
			}
			for code, ref := range op.Responses.Map() {
				r := ref.Value
				if r == nil {
					continue
				}
				status, err := strconv.Atoi(code)
				if err != nil && code != "default" {
					errs = append(errs, fmt.Errorf("%s %s: response %q is not a status code", method, path, code))
					continue
				}
				isError := code == "default" || status >= 400
				if r.Content[mediaJSON] != nil && r.Content[mediaProblem] != nil {
					if isError {
						delete(r.Content, mediaJSON)
					} else {
						delete(r.Content, mediaProblem)
					}
				}
				for _, h := range r.Headers {
					if h.Value != nil {
						h.Value.Required = true
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// nullableRefs gives every nullable schema that is only an allOf of one reference the
// referenced schema's type, in the components and (one level down) their properties.
func nullableRefs(doc *openapi3.T) {
	if doc.Components == nil {
		return
	}
	fix := func(ref *openapi3.SchemaRef) {
		s := ref.Value
		if s == nil || !s.Nullable || s.Type != nil || len(s.AllOf) != 1 {
			return
		}
		name, ok := strings.CutPrefix(s.AllOf[0].Ref, "#/components/schemas/")
		if !ok {
			return
		}
		if target := doc.Components.Schemas[name]; target != nil && target.Value != nil && target.Value.Type != nil {
			t := *target.Value.Type
			s.Type = &t
		}
	}
	for _, ref := range doc.Components.Schemas {
		fix(ref)
		if ref.Value != nil {
			for _, p := range ref.Value.Properties {
				fix(p)
			}
		}
	}
}

// anyJSON drops the type of every property marked x-any-json (and the mark): swag can
// only say "object" for a json.RawMessage, but a payload may be any JSON value.
func anyJSON(doc *openapi3.T) {
	if doc.Components == nil {
		return
	}
	for _, ref := range doc.Components.Schemas {
		if ref.Value == nil {
			continue
		}
		for _, p := range ref.Value.Properties {
			if s := p.Value; s != nil && s.Extensions["x-any-json"] != nil {
				s.Type = nil
				delete(s.Extensions, "x-any-json")
			}
		}
	}
}
