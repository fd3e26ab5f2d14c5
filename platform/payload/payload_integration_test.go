//go:build integration

package payload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/pgtest"
)

// Check and PostgreSQL agree: what Check accepts, jsonb stores and prints at the length
// Check predicts; what jsonb refuses, Check refuses. The inputs are the edges of
// numeric's range and of surrogate escapes, plus random numbers around them.
func TestCheckAgreesWithPostgres(t *testing.T) {
	db := pgtest.NewEmpty(t)
	ctx := context.Background()
	numbers := []string{"0", "-0", "-0.0", "1", "-1.5", "1e131071", "1e131072", "-1e131071", "1e-16383", "1e-16384",
		"0e-16383", "0e-16384", "0.0e-16383", "0.5e-16382", "0.5e-16383", "0e131072", "123.456e131069",
		"1234e131068", "100000000000000000000e131052", "0.00000000000000000001e131092", "1E+5", "1.000e2",
		"0e1073741822", "0e1073741823", "0e-1073741823"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		mant := fmt.Sprintf("%d", r.IntN(100000))
		if r.IntN(2) == 0 {
			mant += "." + strings.Repeat("0", r.IntN(5)) + fmt.Sprintf("%d", r.IntN(1000))
		}
		exp := r.IntN(2*16400) - 16400
		if r.IntN(2) == 0 {
			exp = maxIntegerDigits - 10 + r.IntN(20)
		}
		numbers = append(numbers, fmt.Sprintf("%se%d", mant, exp))
	}
	for _, n := range numbers {
		var text string
		pgErr := db.Pool.QueryRow(ctx, `SELECT ($1::text::jsonb)::text`, n).Scan(&text)
		rendered, err := renderedLength([]byte(n))
		if pgErr != nil {
			require.Error(t, err, "postgres refuses %s (%v) but Check accepts it", n, pgErr)
			continue
		}
		require.NoError(t, err, "postgres stores %s but Check refuses it", n)
		require.Equal(t, len(text), rendered, "printed length of %s", n)
	}
	for _, s := range []string{`"\ud800"`, `"\udc00x"`, `"\ud800\udc00"`, `"\ud83d\ude00"`, `"\udc00\ud800"`,
		`"\ud800\ud800"`, `"\uD800\uDC00"`, `"a\ud800"`, `"\ud800\u0041"`, `"\u0000"`, `"\\u0000"`, `"\udbff\udfff"`} {
		_, pgErr := db.Pool.Exec(ctx, `SELECT $1::text::jsonb`, s)
		err := Check([]byte(s))
		require.Equal(t, pgErr != nil, err != nil, "%s: postgres %v, Check %v", s, pgErr, err)
	}
}
