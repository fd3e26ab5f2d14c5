package consumer

import (
	"testing"

	"github.com/multitenant/mtm/platform/leaktest"
)

// TestMain fails the package's tests if any goroutine they started is still running
// once they are done: every goroutine here must end with its Run/Stop or Close.
func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m)
}
