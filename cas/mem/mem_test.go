package mem_test

import (
	"testing"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/cas/mem"
)

func TestConformance(t *testing.T) {
	castest.Run(t, castest.Harness{
		New: func(t *testing.T) cas.Store { return mem.New() },
		Corrupt: func(t *testing.T, s cas.Store, id cas.ID) {
			s.(*mem.Store).Tamper(id, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
		},
	})
}
