// Package leaktest makes a package's tests fail when they leave goroutines running
// (goleak), so a Run that does not return on Stop or a Close that forgets a background
// loop is caught where it is written.
package leaktest

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// VerifyTestMain runs the tests and then, if they passed, fails the package when any
// goroutine other than the test runner's is still running. Use it as the whole body of
// a package's TestMain.
//
// Idle keep-alive connections of http.DefaultTransport are closed first: the RabbitMQ
// management API clients (amqptest's, the command's rabbitadmin) pool them on purpose,
// and their read/write loops would otherwise be reported. A connection still in use (a
// response body nobody closed) stays open and is reported.
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	if code == 0 {
		if tr, ok := http.DefaultTransport.(*http.Transport); ok {
			tr.CloseIdleConnections()
		}
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "leaktest: goroutines left running after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
