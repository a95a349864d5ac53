package memkv_test

import (
	"testing"

	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/index/kvtest"
	"github.com/mlfs/mlfs/index/memkv"
)

func TestKV(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) index.KV { return memkv.New() })
}
