package badgerkv_test

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/mlfs/mlfs/index/badgerkv"
)

func rss(t *testing.T, what string) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s, _ := os.ReadFile("/proc/self/status")
	var out []string
	for _, l := range strings.Split(string(s), "\n") {
		if strings.HasPrefix(l, "VmHWM") || strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "RssAnon") || strings.HasPrefix(l, "RssFile") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	t.Log(what, out, "heapinuse MiB", ms.HeapInuse>>20, "sys MiB", ms.Sys>>20)
}

func TestZZRSS(t *testing.T) {
	rss(t, "start")
	kv, err := badgerkv.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rss(t, "open")
	val := make([]byte, 200)
	for j := 0; j < 400; j++ {
		b := kv.NewBatch()
		for i := 0; i < 5000; i++ {
			b.Set(fmt.Appendf(nil, "k/%08d/%08d", (i*7919+j)%100000, j*5000+i), val)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		if j%100 == 0 {
			rss(t, fmt.Sprint("batch ", j))
		}
	}
	rss(t, "written")
	f, _ := os.Create("/tmp/heap.out"); pprof.WriteHeapProfile(f); f.Close()
	n := 0
	kv.Scan(nil, func(k, v []byte) error { n++; return nil })
	rss(t, "scanned")
	kv.Close()
	rss(t, "closed")
	t.Log("keys", n)
}
