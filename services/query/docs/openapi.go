package docs

import _ "embed" // the OpenAPI 3 document, generated with the Swagger 2 one by make swagger

// OpenAPI is the service's OpenAPI 3 document (make swagger converts swag's Swagger 2
// output with tools/openapi), served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte
