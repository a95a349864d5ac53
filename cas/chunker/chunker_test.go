package chunker

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/zeebo/blake3"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// pseudo returns n deterministic bytes that do not depend on any library's
// random number generator, so the golden file holds on every Go version.
func pseudo(n int, seed uint64) []byte {
	b := make([]byte, n)
	x := seed
	for i := 0; i < n; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(x >> (8 * j))
		}
	}
	return b
}

func chunkAll(t testing.TB, r io.Reader) [][]byte {
	t.Helper()
	var out [][]byte
	c := New(r)
	for {
		b, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(b))
	}
}

// TestGolden pins the chunk boundaries: they are part of the storage format
// and must be identical on every run, machine and Go version.
func TestGolden(t *testing.T) {
	data := pseudo(8<<20, 0x1234567)
	var sb strings.Builder
	fmt.Fprintf(&sb, "gear %x\n", blake3.Sum256(fmt.Appendf(nil, "%v", gear)))
	off := 0
	for _, c := range chunkAll(t, bytes.NewReader(data)) {
		fmt.Fprintf(&sb, "%d %d\n", off, len(c))
		off += len(c)
	}
	golden := "testdata/golden.txt"
	if *update {
		if err := os.WriteFile(golden, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if sb.String() != string(want) {
		t.Fatalf("chunk boundaries changed; this breaks deduplication against every stored version\ngot:\n%s\nwant:\n%s", sb.String(), want)
	}
}

func TestChunksCoverInputWithinLimits(t *testing.T) {
	for _, n := range []int{0, 1, MinSize - 1, MinSize, MinSize + 1, MaxSize, MaxSize + 1, 3*MaxSize + 17, 5 << 20} {
		data := pseudo(n, uint64(n)+1)
		chunks := chunkAll(t, bytes.NewReader(data))
		if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
			t.Fatalf("n=%d: chunks do not reassemble the input", n)
		}
		for i, c := range chunks {
			last := i == len(chunks)-1
			if len(c) == 0 || len(c) > MaxSize || (!last && len(c) < MinSize) {
				t.Fatalf("n=%d: chunk %d has size %d", n, i, len(c))
			}
		}
	}
}

// Short reads from the source must not move any boundary.
func TestBoundariesIndependentOfReadSizes(t *testing.T) {
	data := pseudo(3<<20, 99)
	want := chunkAll(t, bytes.NewReader(data))
	got := chunkAll(t, iotest.HalfReader(iotest.DataErrReader(bytes.NewReader(data))))
	if len(got) != len(want) {
		t.Fatalf("got %d chunks, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("chunk %d differs", i)
		}
	}
}

// An insertion in the middle changes only the chunks around it.
func TestInsertionChangesFewChunks(t *testing.T) {
	data := pseudo(16<<20, 7)
	ins := append(append(bytes.Clone(data[:8<<20]), []byte("a new row,1,2,3\n")...), data[8<<20:]...)
	seen := map[[32]byte]bool{}
	for _, c := range chunkAll(t, bytes.NewReader(data)) {
		seen[blake3.Sum256(c)] = true
	}
	newBytes := 0
	for _, c := range chunkAll(t, bytes.NewReader(ins)) {
		if !seen[blake3.Sum256(c)] {
			newBytes += len(c)
		}
	}
	if newBytes > 3*MaxSize {
		t.Fatalf("a 16-byte insertion produced %d new bytes of chunks", newBytes)
	}
}

func TestAverageSizeNearTarget(t *testing.T) {
	chunks := chunkAll(t, bytes.NewReader(pseudo(64<<20, 3)))
	avg := (64 << 20) / len(chunks)
	if avg < AvgSize/2 || avg > AvgSize*2 {
		t.Fatalf("average chunk %d bytes, target %d", avg, AvgSize)
	}
}

func TestReadErrorIsReturned(t *testing.T) {
	boom := fmt.Errorf("disk on fire")
	c := New(io.MultiReader(bytes.NewReader(pseudo(100, 1)), iotest.ErrReader(boom)))
	if _, err := c.Next(); err != boom {
		t.Fatalf("got %v, want the reader's error", err)
	}
}

func BenchmarkChunker(b *testing.B) {
	data := pseudo(64<<20, 5)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c := New(bytes.NewReader(data))
		for {
			if _, err := c.Next(); err == io.EOF {
				break
			}
		}
	}
}
