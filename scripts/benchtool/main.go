// Command benchtool makes the inputs of scripts/bench and takes the
// measurements that need more than a shell: a single-stream BLAKE3 pass,
// peak RSS of a child process, bytes stored in a local store, a read of a
// version's file straight from the store (the baseline of a cold read
// through the mount), a download of a bucket's packs with parallel ranged
// GETs (the baseline of a cold read from a remote) and the latency of
// random reads.
package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zeebo/blake3"

	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/config"
	"github.com/mlfs/mlfs/daemon"
	"github.com/mlfs/mlfs/repo"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch args := os.Args[2:]; os.Args[1] {
	case "csv":
		err = genCSV(args[0], size(args[1]), 1)
	case "insert":
		err = insertRows(args[0], args[1])
	case "mixed":
		err = genMixed(args[0], size(args[1]))
	case "hash":
		err = hashTree(args[0])
	case "run":
		err = run(args)
	case "storebytes":
		err = storeBytes(args[0])
	case "random":
		err = randomFile(args[0], size(args[1]), rand.NewChaCha8([32]byte{7}))
	case "smallfiles":
		var each int
		if len(args) > 3 {
			each = int(size(args[3]))
		}
		err = genSmallFiles(args[0], int(size(args[1])), int(size(args[2])), each)
	case "storeread":
		err = storeRead(args[0], args[1], args[2])
	case "randread":
		err = randRead(args[0], int(size(args[1])))
	case "ingest":
		err = ingest(args)
	case "latency":
		err = latency(args[0], args[1], args[2], args[3], int(size(args[4])))
	case "s3get":
		keep := ""
		if len(args) > 5 {
			keep = args[5]
		}
		err = s3Get(args[0], args[1], args[2], int(size(args[3])), size(args[4]), keep)
	case "mkruns":
		prefix := "b"
		if len(args) > 3 {
			prefix = args[3]
		}
		err = makeRuns(args[0], prefix, int(size(args[1])), int(size(args[2])))
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: benchtool csv PATH SIZE | insert IN OUT | mixed DIR SIZE | hash DIR | run CMD... | storebytes STORE
       | random PATH SIZE | smallfiles DIR FILES FOLDERS [SIZE] | storeread STORE DATASET@VERSION PATH | randread FILE N
       | ingest PATH POINTS [SOCKET RUN METRIC] | mkruns RUNSDIR RUNS METRICS [PREFIX]
       | latency PATH SOCKET RUN METRIC N | s3get ENDPOINT BUCKET PREFIX PARALLEL RANGE_BYTES [KEEP_FILE]`)
	os.Exit(2)
}

func size(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool: bad size", s)
		os.Exit(2)
	}
	return n
}

var species = []string{"setosa", "versicolor", "virginica"}

func writeRows(w *bufio.Writer, rng *rand.Rand, n int64) int64 {
	var done int64
	for done < n {
		k, _ := fmt.Fprintf(w, "%d,%.4f,%.4f,%.4f,%.4f,%s\n", rng.IntN(1e9), rng.Float64()*8, rng.Float64()*5, rng.Float64()*7, rng.Float64()*3, species[rng.IntN(3)])
		done += int64(k)
	}
	return done
}

func genCSV(path string, n int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("id,sepal_length,sepal_width,petal_length,petal_width,species\n")
	writeRows(w, rand.New(rand.NewPCG(seed, 7)), n)
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// insertRows copies in to out with 1% new rows inserted as 10 blocks at
// spread-out line boundaries.
func insertRows(in, out string) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(99, 1))
	block := int64(len(data)) / 100 / 10
	prev := 0
	for i := 1; i <= 10; i++ {
		at := i * len(data) / 11
		at += bytes.IndexByte(data[at:], '\n') + 1
		w.Write(data[prev:at])
		writeRows(w, rng, block)
		prev = at
	}
	w.Write(data[prev:])
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func randomFile(path string, n int64, rng *rand.ChaCha8) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rng, n); err != nil {
		return err
	}
	return f.Close()
}

// genMixed writes about total bytes shaped like an ML dataset folder: one
// large CSV (37%), one binary blob like model weights (25%), images of
// 128-384 KiB (25%) and small JSON/text files of 1-11 KiB (the rest).
func genMixed(dir string, total int64) error {
	rng := rand.NewChaCha8([32]byte{42})
	prng := rand.New(rand.NewPCG(3, 4))
	for _, d := range []string{"tables", "weights", "images", "labels"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := genCSV(filepath.Join(dir, "tables", "train.csv"), total*37/100, 5); err != nil {
		return err
	}
	if err := randomFile(filepath.Join(dir, "weights", "model.bin"), total/4, rng); err != nil {
		return err
	}
	var n int64
	for i := 0; n < total/4; i++ {
		sz := int64(128<<10 + prng.IntN(256<<10))
		sub := filepath.Join(dir, "images", fmt.Sprintf("%03d", i/100))
		os.MkdirAll(sub, 0o755)
		if err := randomFile(filepath.Join(sub, fmt.Sprintf("img%05d.jpg", i)), sz, rng); err != nil {
			return err
		}
		n += sz
	}
	n = 0
	for i := 0; n < total*13/100; i++ {
		var b bytes.Buffer
		target := 1<<10 + prng.IntN(10<<10)
		for b.Len() < target {
			fmt.Fprintf(&b, "{\"id\": %d, \"label\": %q, \"score\": %.5f}\n", prng.IntN(1e6), species[prng.IntN(3)], prng.Float64())
		}
		sub := filepath.Join(dir, "labels", fmt.Sprintf("%03d", i/1000))
		os.MkdirAll(sub, 0o755)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("l%06d.json", i)), b.Bytes(), 0o644); err != nil {
			return err
		}
		n += int64(b.Len())
	}
	return nil
}

// hashTree is the baseline: read every file once and BLAKE3 it, in one
// stream, like b3sum --num-threads 1 or md5sum.
func hashTree(dir string) error {
	buf := make([]byte, 1<<20)
	var total int64
	start := time.Now()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := blake3.New()
		n, err := io.CopyBuffer(h, f, buf)
		total += n
		h.Sum(nil)
		return err
	})
	fmt.Fprintf(os.Stderr, "hashed %d bytes in %v\n", total, time.Since(start))
	return err
}

// run runs a command and prints "<seconds> <peak RSS KiB>" on stderr.
func run(args []string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	el := time.Since(start)
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	fmt.Fprintf(os.Stderr, "RESULT %.3f %d\n", el.Seconds(), rss)
	return err
}

func storeBytes(store string) error {
	var n int64
	err := filepath.WalkDir(filepath.Join(store, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	fmt.Println(n)
	return err
}

// genSmallFiles writes files of 1-4 KiB of JSON-like text (each of size
// bytes, if size is positive) spread evenly over folders, like the label
// files of an image data set.
func genSmallFiles(dir string, files, folders, size int) error {
	prng := rand.New(rand.NewPCG(5, 6))
	var b bytes.Buffer
	for i := 0; i < files; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%04d", i%folders))
		if i < folders {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return err
			}
		}
		b.Reset()
		target := 1<<10 + prng.IntN(3<<10)
		if size > 0 {
			target = size
		}
		for b.Len() < target {
			fmt.Fprintf(&b, "{\"id\": %d, \"label\": %q, \"score\": %.5f}\n", prng.IntN(1e6), species[prng.IntN(3)], prng.Float64())
		}
		data := b.Bytes()
		if size > 0 {
			data = data[:size]
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%06d.json", i)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// storeRead is the baseline of a cold read through the mount: it opens
// the store as the daemon does, resolves the version, walks its trees to
// the file and reads the file's chunks in order with the store's Get, which
// verifies each against its id. No FUSE, no chunk cache, one stream.
func storeRead(store, refArg, path string) error {
	ctx := context.Background()
	start := time.Now()
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return err
	}
	if cfg.Store, err = filepath.Abs(store); err != nil {
		return err
	}
	ref, err := repo.ParseRef(refArg)
	if err != nil {
		return err
	}
	r, err := daemon.OpenRepo(ctx, cfg, false, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer r.Close()
	st := r.Store()
	v, err := r.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	id := v.Tree
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var ent object.Entry
	for i, name := range parts {
		b, err := st.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("tree of %s: %w", strings.Join(parts[:i], "/"), err)
		}
		t, err := object.DecodeTree(b)
		if err != nil {
			return err
		}
		k, ok := slices.BinarySearchFunc(t.Entries, name, func(e object.Entry, n string) int { return strings.Compare(e.Name, n) })
		if !ok {
			return fmt.Errorf("%s: %s not found in %s", ref, strings.Join(parts[:i+1], "/"), ref)
		}
		ent = t.Entries[k]
		if want := object.TypeDir; i < len(parts)-1 && ent.Type != want {
			return fmt.Errorf("%s: %s is not a folder", ref, strings.Join(parts[:i+1], "/"))
		}
		id = ent.ID
	}
	if ent.Type != object.TypeFile {
		return fmt.Errorf("%s: %s is not a file", ref, path)
	}
	b, err := st.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("file object of %s: %w", path, err)
	}
	f, err := object.DecodeFile(b)
	if err != nil {
		return err
	}
	var n int64
	for _, c := range f.Chunks {
		data, err := st.Get(ctx, c.ID)
		if err != nil {
			return fmt.Errorf("%s: chunk %s: %w", path, c.ID.Short(), err)
		}
		n += int64(len(data))
	}
	if n != f.Size {
		return fmt.Errorf("%s: read %d bytes, file object says %d", path, n, f.Size)
	}
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "read %d bytes in %d chunks in %v (%.0f MB/s)\n", n, len(f.Chunks), el, float64(n)/el.Seconds()/1e6)
	return nil
}

// randRead preads 4 KiB at n random 4 KiB-aligned offsets of file (fixed
// seed, so every run and every file of one size reads the same offsets)
// and prints the p50, p99 and mean latency in microseconds.
func randRead(path string, n int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	pages := fi.Size() / 4096
	if pages < 1 || n < 1 {
		return fmt.Errorf("%s: need at least one 4 KiB page and one read", path)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	buf := make([]byte, 4096)
	lat := make([]time.Duration, n)
	var sum time.Duration
	for i := range lat {
		off := rng.Int64N(pages) * 4096
		t0 := time.Now()
		k, err := f.ReadAt(buf, off)
		lat[i] = time.Since(t0)
		if k != len(buf) {
			return fmt.Errorf("%s: read %d bytes at %d: %v", path, k, off, err)
		}
		sum += lat[i]
	}
	slices.Sort(lat)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	fmt.Printf("%.1f %.1f %.1f\n", us(lat[(n-1)/2]), us(lat[(n*99-1)/100]), us(sum)/float64(n))
	return nil
}
