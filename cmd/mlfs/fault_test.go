package main

// Faults of the remote as a user meets them. Each "machine" is an mlfs
// instance with its own daemon process; they share one versitygw bucket,
// some of them through a faultproxy running in this test process, which
// breaks their requests while the test changes its plan. The tests judge
// only what a user can see: the bytes (or the EIO) a program gets from the
// mount and how long it waited, what mkdir says, what mlfs status and fsck
// print, and what the bucket itself holds.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/pack"
	"github.com/mlfs/mlfs/cas/retry"
	"github.com/mlfs/mlfs/internal/emulators"
	"github.com/mlfs/mlfs/internal/faultproxy"
)

// faultTimeout is the per-request timeout of the machines behind the
// proxy: short, so that a stalled request costs seconds, not the default
// half minute.
const faultTimeout = 2 * time.Second

// slack covers what the retry budget does not: starting processes, FUSE
// round trips, a few healthy requests, and a loaded 2-core CI machine.
const slack = 15 * time.Second

// retryBudget is the longest one store call can take before the retry
// layer gives up on it, when each attempt takes attempt: all attempts, and
// the longest backoff before each retry.
func retryBudget(attempt time.Duration) time.Duration {
	d := time.Duration(retry.DefaultMaxAttempts) * attempt
	for n := 1; n < retry.DefaultMaxAttempts; n++ {
		d += min(retry.DefaultMaxDelay, retry.DefaultBaseDelay<<(n-1))
	}
	return d
}

// readDeadline bounds a read through the mount when each request attempt
// takes up to attempt. A blob missing from the read-ahead windows is
// fetched with its window first and, if that fetch fails, by itself: two
// store calls, each with the whole retry budget, before the read gives up.
func readDeadline(attempt time.Duration) time.Duration {
	return 2*retryBudget(attempt) + slack
}

// faultRemote is a bucket on a versitygw, reachable directly and through
// a fault proxy.
type faultRemote struct {
	t      *testing.T
	s3     emulators.S3Server
	bucket string
	proxy  *faultproxy.Proxy
	via    string // the proxy's URL
}

// prefix is the key prefix of the remote in the bucket.
const prefix = "team"

// newFaultRemote starts versitygw, a fresh bucket, and a proxy in front of
// it that forwards everything untouched until a plan is enabled.
func newFaultRemote(t *testing.T) *faultRemote {
	s := emulators.S3(t)
	r := &faultRemote{t: t, s3: s, bucket: s.NewBucket(t)}
	target, err := url.Parse(s.Endpoint)
	must(t, err)
	r.proxy = faultproxy.New(target, faultproxy.Plan{})
	r.proxy.SetEnabled(false)
	srv := httptest.NewServer(r.proxy)
	t.Cleanup(srv.Close)
	t.Cleanup(r.proxy.Close) // before srv.Close, which waits for stalled handlers
	r.via = srv.URL
	return r
}

// machine makes an instance on the remote, reaching it through the proxy
// or directly.
func (r *faultRemote) machine(throughProxy bool) *instance {
	in := newInstance(r.t, "")
	in.env = append(in.env, r.s3.Env()...)
	endpoint := r.s3.Endpoint
	if throughProxy {
		endpoint = r.via
	}
	in.ok("remote", "add", "team", "s3://"+r.bucket+"/"+prefix, "--endpoint", endpoint, "--path-style",
		"--timeout", faultTimeout.String())
	return in
}

// mount mounts in's daemon. The proxy heals before the mount is taken
// down (cleanups run last first), so that unmounting never waits on faults.
func (r *faultRemote) mount(in *instance) string {
	dir := in.mount("")
	r.t.Cleanup(r.heal)
	return dir
}

// fail makes the proxy follow p from now on.
func (r *faultRemote) fail(p faultproxy.Plan) {
	r.proxy.SetPlan(p)
	r.proxy.SetEnabled(true)
}

// heal makes the proxy forward every request untouched.
func (r *faultRemote) heal() { r.proxy.SetEnabled(false) }

// keys lists the bucket's keys under the remote's prefix and p.
func (r *faultRemote) keys(p string) map[string]int64 {
	r.t.Helper()
	out := map[string]int64{}
	pages := s3sdk.NewListObjectsV2Paginator(r.s3.Client(), &s3sdk.ListObjectsV2Input{
		Bucket: aws.String(r.bucket), Prefix: aws.String(prefix + "/" + p)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		must(r.t, err)
		for _, o := range page.Contents {
			out[*o.Key] = *o.Size
		}
	}
	return out
}

// object reads one object of the bucket.
func (r *faultRemote) object(key string) []byte {
	r.t.Helper()
	out, err := r.s3.Client().GetObject(context.Background(), &s3sdk.GetObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(key)})
	must(r.t, err)
	defer out.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(out.Body)
	must(r.t, err)
	return b.Bytes()
}

// randomBytes returns n random bytes: content no chunk of another file
// shares, so every file costs its own fetches.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// readResult is what one read through the mount gave.
type readResult struct {
	data []byte
	err  error
	took time.Duration
	hung bool // not returned within the deadline
}

// timedRead reads path, giving up on it after d. A read stuck in the
// kernel cannot be canceled: its goroutine is left behind.
func timedRead(path string, d time.Duration) readResult {
	start := time.Now()
	done := make(chan readResult, 1)
	go func() {
		b, err := os.ReadFile(path)
		done <- readResult{data: b, err: err, took: time.Since(start)}
	}()
	select {
	case res := <-done:
		return res
	case <-time.After(d):
		return readResult{hung: true, took: d}
	}
}

// check returns why res is not a correct outcome of reading want, or "".
// Correct means the right bytes, or EIO after no wrong byte: a failed read
// returns what it read before the failure, which must be a prefix of want.
func (res readResult) check(want []byte) string {
	switch {
	case res.hung:
		return fmt.Sprintf("still reading after %v", res.took)
	case res.err == nil && !bytes.Equal(res.data, want):
		return fmt.Sprintf("WRONG BYTES: %d bytes read, sha256 %x, want %d bytes, sha256 %x",
			len(res.data), sha256.Sum256(res.data), len(want), sha256.Sum256(want))
	case res.err != nil && !errors.Is(res.err, syscall.EIO):
		return fmt.Sprintf("failed with %v, want EIO", res.err)
	case res.err != nil && !bytes.HasPrefix(want, res.data):
		return fmt.Sprintf("WRONG BYTES before the EIO: %d bytes that are not the file's first", len(res.data))
	}
	return ""
}

// mustRead reads path within d and fails the test unless it gives want.
func mustRead(t *testing.T, path string, want []byte, d time.Duration) readResult {
	t.Helper()
	res := timedRead(path, d)
	if why := res.check(want); why != "" || res.err != nil {
		t.Fatalf("read %s: %s%v", path, why, res.err)
	}
	return res
}

// mustEIO reads path within d and fails the test unless it fails with EIO
// after no wrong byte.
func mustEIO(t *testing.T, path string, want []byte, d time.Duration) readResult {
	t.Helper()
	res := timedRead(path, d)
	if why := res.check(want); why != "" {
		t.Fatalf("read %s: %s", path, why)
	}
	if res.err == nil {
		t.Fatalf("read %s succeeded, want EIO", path)
	}
	return res
}

// statusErrors returns the recent errors that mlfs status shows.
func statusErrors(in *instance) string {
	in.t.Helper()
	_, errs, _ := strings.Cut(in.ok("status"), "\nerrors  ")
	return errs
}

// waitForPath waits until path exists: a version made on another machine.
func waitForPath(t *testing.T, path string, within time.Duration) {
	t.Helper()
	waitFor(t, path, within, func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
}

// Reads of a version through a remote that fails over a quarter of all
// requests, in every way it can, by three machines at once with empty
// caches: each file read either returns exactly the bytes written on the
// machine that made the version or fails with EIO, never later than the
// retry budget allows; and the retries make nearly all of them succeed.
func TestFaultyRemoteReads(t *testing.T) {
	needFUSE(t)
	r := newFaultRemote(t)
	a := r.machine(false)
	ma := r.mount(a)

	files := map[string][]byte{}
	must(t, os.MkdirAll(filepath.Join(ma, "ds/small"), 0o755))
	must(t, os.MkdirAll(filepath.Join(ma, "ds/big"), 0o755))
	for i := range 30 {
		files[fmt.Sprintf("small/%02d.bin", i)] = randomBytes(16 << 10)
	}
	for i := range 10 {
		files[fmt.Sprintf("big/%02d.bin", i)] = randomBytes(1<<20 + mrand.IntN(7<<20))
	}
	var total int
	for name, data := range files {
		must(t, os.WriteFile(filepath.Join(ma, "ds", name), data, 0o644))
		total += len(data)
	}
	start := time.Now()
	must(t, os.Mkdir(filepath.Join(ma, "ds@v1"), 0o755))
	t.Logf("ds@v1: %d files, %.1f MiB, published in %v", len(files), float64(total)/(1<<20), time.Since(start).Round(time.Millisecond))

	// Short stalls, past the timeout: the attempt is cut and retried, and
	// the server meanwhile answers a request nobody waits for any more.
	plan := faultproxy.Plan{Seed: uint64(time.Now().UnixNano()), Error: 0.08, Reset: 0.07, Truncate: 0.07, Stall: 0.06,
		StallFor: faultTimeout + time.Second}
	t.Logf("fault plan: seed %d, 503 %.0f%%, reset %.0f%%, truncated %.0f%%, stall %.0f%% (for %v, timeout %v)",
		plan.Seed, 100*plan.Error, 100*plan.Reset, 100*plan.Truncate, 100*plan.Stall, plan.StallFor, faultTimeout)

	// Each reading machine's cache is empty, so each one fetches
	// everything: three times the requests, for a fair sample of faults.
	// Their daemons start under the faults too: opening the remote, and
	// loading its packs' indexes, is retried like any read. (Not so the
	// check of remote add, which one failed request fails.)
	readers := []*instance{r.machine(true), r.machine(true), r.machine(true)}
	r.fail(plan)
	var mounts []string
	for _, in := range readers {
		mounts = append(mounts, r.mount(in))
	}
	for _, m := range mounts {
		waitForPath(t, filepath.Join(m, "ds@v1"), readDeadline(faultTimeout))
	}

	deadline := readDeadline(faultTimeout)
	type read struct {
		machine int
		name    string
	}
	todo := make(chan read)
	results := map[read]readResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start = time.Now()
	for range 2 * len(mounts) { // two readers a machine, as a data loader would
		wg.Go(func() {
			for rd := range todo {
				res := timedRead(filepath.Join(mounts[rd.machine], "ds@v1", rd.name), deadline)
				mu.Lock()
				results[rd] = res
				mu.Unlock()
			}
		})
	}
	for name := range files {
		for m := range mounts {
			todo <- read{m, name}
		}
	}
	close(todo)
	wg.Wait()
	elapsed := time.Since(start)
	r.heal()

	var ok, eio int
	var slowest time.Duration
	for rd, res := range results {
		if why := res.check(files[rd.name]); why != "" {
			t.Errorf("machine %d, %s: %s", rd.machine, rd.name, why)
			continue
		}
		slowest = max(slowest, res.took)
		if res.err != nil {
			eio++
			t.Logf("machine %d, %s: EIO after %v", rd.machine, rd.name, res.took.Round(time.Millisecond))
		} else {
			ok++
		}
	}
	st := r.proxy.Stats()
	t.Logf("%d reads in %v (slowest %v, deadline %v): %d right, %d EIO", len(results), elapsed.Round(time.Millisecond),
		slowest.Round(time.Millisecond), deadline, ok, eio)
	t.Logf("proxy: %d requests, %d faulted and so retried (%d 503, %d reset, %d truncated, %d stalled)",
		st.Requests, st.Errors+st.Resets+st.Truncations+st.Stalls, st.Errors, st.Resets, st.Truncations, st.Stalls)
	for i, in := range readers {
		byOp := remoteCounts(t, in)
		n := 0
		for _, c := range byOp {
			n += c
		}
		t.Logf("mlfs status on reading machine %d: %d remote requests %v", i, n, byOp)
		if eio > 0 {
			t.Logf("mlfs status errors on reading machine %d:\n%s", i, statusErrors(in))
		}
	}
	if st.Errors == 0 || st.Resets == 0 || st.Truncations == 0 || st.Stalls == 0 {
		t.Errorf("not every kind of fault was met: %+v", st)
	}
	// Six attempts per request, 28% of them failing: a request fails for
	// good about once in 2,000 (0.28⁶), a read (a request or two) about
	// once in 1,000. More than two EIO in 120 reads mean the retries are
	// not working: without them, some 5% of the reads fail.
	if eio > len(results)/60 {
		t.Errorf("%d of %d reads failed despite the retries", eio, len(results))
	}
}

// A remote that fails every request, or answers none: a cold read fails
// with EIO within the retry budget, mlfs status says why, and once the
// remote is back the same read returns the right bytes: nothing of the
// failure was kept.
func TestRemoteOutage(t *testing.T) {
	needFUSE(t)
	r := newFaultRemote(t)
	a, b := r.machine(false), r.machine(true)
	ma := r.mount(a)

	// Two versions, made one after the other, so that each file is in a
	// pack of its own: reading one fetches nothing of the other ahead.
	one, two := randomBytes(3<<20+11), randomBytes(2<<20+7)
	must(t, os.Mkdir(filepath.Join(ma, "ds"), 0o755))
	must(t, os.WriteFile(filepath.Join(ma, "ds/one.bin"), one, 0o644))
	must(t, os.Mkdir(filepath.Join(ma, "ds@v1"), 0o755))
	must(t, os.WriteFile(filepath.Join(ma, "ds/two.bin"), two, 0o644))
	must(t, os.Mkdir(filepath.Join(ma, "ds@v2"), 0o755))

	mb := r.mount(b)
	waitForPath(t, filepath.Join(mb, "ds@v1"), slack)
	waitForPath(t, filepath.Join(mb, "ds@v2"), slack)

	for _, c := range []struct {
		name    string
		plan    faultproxy.Plan
		attempt time.Duration // how long each attempt takes
		reason  string        // what mlfs status says
		path    string
		want    []byte
	}{
		{"every request fails", faultproxy.Plan{Error: 1}, 0, "SlowDown", "ds@v1/one.bin", one},
		{"no request is answered", faultproxy.Plan{Stall: 1, StallFor: time.Hour}, faultTimeout, retry.ErrAttemptTimeout.Error(), "ds@v2/two.bin", two},
	} {
		path := filepath.Join(mb, c.path)
		r.fail(c.plan)
		deadline := readDeadline(c.attempt)
		res := mustEIO(t, path, c.want, deadline)
		t.Logf("%s: %s gave EIO after %v (deadline %v); proxy %+v", c.name, c.path, res.took.Round(time.Millisecond), deadline, r.proxy.Stats())
		if errs := statusErrors(b); !strings.Contains(errs, c.reason) || !strings.Contains(errs, "returning EIO") {
			t.Errorf("%s: mlfs status does not say %q was why a read failed; its errors:\n%s", c.name, c.reason, errs)
		}
		r.heal()
		// A remote that stopped answering has its calls fail at once but
		// one, the probe, whose answer ends that: a stalled probe holds
		// the rest off for at most daemon's reopenEvery (5 s).
		healed := time.Now()
		for {
			res = timedRead(path, slack)
			if why := res.check(c.want); why != "" {
				t.Fatalf("%s: after the outage, read %s: %s", c.name, path, why)
			}
			if res.err == nil {
				break
			}
			if time.Since(healed) > 5*time.Second+slack {
				t.Fatalf("%s: %v after the outage, %s still fails: %v", c.name, time.Since(healed).Round(time.Millisecond), path, res.err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("%s: after the outage the file read right %v later", c.name, time.Since(healed).Round(time.Millisecond))
	}
}

// A snapshot whose upload fails, refused by the remote or cut off half-way:
// mkdir fails with EIO within the retry budget and mlfs status says why;
// the remote holds no name for it and nothing broken (another machine's
// fsck of the remote is clean, and every object is whole); and with the
// remote healthy the same mkdir publishes a version that another machine
// reads back exactly.
func TestInterruptedSnapshot(t *testing.T) {
	needFUSE(t)
	r := newFaultRemote(t)
	a, c := r.machine(true), r.machine(false)
	ma := r.mount(a)

	// A version the remote has before, for the checks to walk.
	must(t, os.Mkdir(filepath.Join(ma, "base"), 0o755))
	must(t, os.WriteFile(filepath.Join(ma, "base/readme"), []byte("made before the faults\n"), 0o644))
	must(t, os.Mkdir(filepath.Join(ma, "base@v1"), 0o755))

	// More than a pack (16 MiB), so that the snapshot uploads several.
	files := map[string][]byte{"a.bin": randomBytes(9<<20 + 1), "b.bin": randomBytes(9 << 20), "c.bin": randomBytes(2<<20 + 3)}
	must(t, os.Mkdir(filepath.Join(ma, "ds"), 0o755))
	for name, data := range files {
		must(t, os.WriteFile(filepath.Join(ma, "ds", name), data, 0o644))
	}

	objects := "/" + r.bucket + "/" + prefix + "/objects/"
	isUpload := func(req *http.Request) bool {
		return req.Method == http.MethodPut && strings.HasPrefix(req.URL.Path, objects)
	}
	var uploads atomic.Int32
	for _, phase := range []struct {
		name string
		rule func(req *http.Request, _ int) faultproxy.Fault
		// passed is how many uploads may get through before the faults.
		passed int
	}{
		{"every upload refused", func(req *http.Request, _ int) faultproxy.Fault {
			if isUpload(req) {
				return faultproxy.Error
			}
			return faultproxy.None
		}, 0},
		// The first pack makes it; every later upload of an object is cut
		// off half-way, on every attempt, and never reaches the server.
		{"uploads cut off", func(req *http.Request, _ int) faultproxy.Fault {
			if !isUpload(req) || uploads.Add(1) == 1 {
				return faultproxy.None
			}
			return faultproxy.Cut
		}, 1},
	} {
		before, prev := len(r.keys("objects/")), r.proxy.Stats()
		logged := strings.Count(statusErrors(a), "upload pack")
		r.fail(faultproxy.Plan{Rule: phase.rule})
		// Refused or cut, an attempt fails at once: the budget is the
		// backoff, plus the time the first pack takes.
		deadline := retryBudget(0) + slack
		start := time.Now()
		err := mkdirWithin(t, filepath.Join(ma, "ds@v1"), deadline)
		took := time.Since(start)
		st := r.proxy.Stats()
		t.Logf("%s: mkdir ds@v1 failed after %v (deadline %v): %v; proxy %+v", phase.name, took.Round(time.Millisecond), deadline, err, st)
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("%s: mkdir ds@v1: %v, want EIO", phase.name, err)
		}
		if faulted := st.Errors - prev.Errors + st.Cuts - prev.Cuts; faulted < retry.DefaultMaxAttempts {
			t.Errorf("%s: %d uploads failed: the upload was not tried %d times", phase.name, faulted, retry.DefaultMaxAttempts)
		}
		if errs := statusErrors(a); strings.Count(errs, "upload pack") <= logged || !strings.Contains(errs, "ds@v1") {
			t.Errorf("%s: mlfs status does not say why mkdir ds@v1 failed; its errors:\n%s", phase.name, errs)
		}

		// The bucket: no name for the snapshot, at most the packs let
		// through (the one that was, unless the failure of the others
		// canceled it), and every object whole, as its name says.
		refs := r.keys("refs/")
		if _, ok := refs[prefix+"/refs/ds/v1"]; ok {
			t.Fatalf("%s: the remote has ds/v1 after the failed snapshot: %v", phase.name, slices.Sorted(maps.Keys(refs)))
		}
		packs := r.keys("objects/")
		if len(packs) > before+phase.passed {
			t.Errorf("%s: %d objects on the remote, %d before the snapshot: more than the %d let through", phase.name, len(packs), before, phase.passed)
		}
		for key := range packs {
			checkWhole(t, key, r.object(key))
		}
		t.Logf("%s: the bucket has refs %v and %d objects", phase.name, slices.Sorted(maps.Keys(refs)), len(packs))
		if out := c.ok("fsck", "--remote"); !strings.Contains(out, ": 0 problems") {
			t.Fatalf("%s: fsck --remote on another machine:\n%s", phase.name, out)
		}
		c.fails("has no versions", "versions", "ds")
		r.heal()
	}

	start := time.Now()
	if err := mkdirWithin(t, filepath.Join(ma, "ds@v1"), retryBudget(faultTimeout)+slack); err != nil {
		t.Fatalf("mkdir ds@v1 with the remote healthy: %v", err)
	}
	t.Logf("mkdir ds@v1 with the remote healthy took %v", time.Since(start).Round(time.Millisecond))
	mc := r.mount(c)
	waitForPath(t, filepath.Join(mc, "ds@v1"), slack)
	for name, data := range files {
		mustRead(t, filepath.Join(mc, "ds@v1", name), data, slack)
	}
	if out := c.ok("fsck", "--remote"); !strings.Contains(out, ": 0 problems") {
		t.Fatalf("fsck --remote after the snapshot:\n%s", out)
	}
}

// mkdirWithin makes dir (a snapshot) and fails the test if that takes
// longer than d.
func mkdirWithin(t *testing.T, dir string, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- os.Mkdir(dir, 0o755) }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("mkdir %s: no answer within %v", dir, d)
		return nil
	}
}

// checkWhole fails the test unless data is a complete pack (or a single
// object) named as key says: an upload cut short must never be stored
// under the name of what it was sending.
func checkWhole(t *testing.T, key string, data []byte) {
	t.Helper()
	id, err := cas.ParseID(key[strings.LastIndex(key, "/")+1:])
	if err != nil {
		t.Fatalf("object %s: %v", key, err)
	}
	if cas.Sum(data) == id {
		return
	}
	entries, err := pack.Parse(data)
	if err != nil || pack.Name(data) != id {
		t.Fatalf("object %s (%d bytes) is not whole: %v", key, len(data), err)
	}
	for _, e := range entries {
		if cas.Sum(data[e.Offset:e.Offset+e.Length]) != e.ID {
			t.Fatalf("object %s: blob %s is damaged", key, e.ID.Short())
		}
	}
}

// A byte flipped in a pack at rest on the remote: fsck --remote finds it
// and names the file, and another machine reading that file cold gets EIO
// (never the damaged bytes) while its mount goes on serving the others.
func TestCorruptRemoteObject(t *testing.T) {
	needFUSE(t)
	r := newFaultRemote(t)
	a, b := r.machine(false), r.machine(false)
	ma := r.mount(a)

	files := map[string][]byte{"big.bin": randomBytes(5<<20 + 5), "other.bin": randomBytes(2 << 20)}
	for i := range 10 {
		files[fmt.Sprintf("small-%02d", i)] = randomBytes(16 << 10)
	}
	must(t, os.Mkdir(filepath.Join(ma, "ds"), 0o755))
	for name, data := range files {
		must(t, os.WriteFile(filepath.Join(ma, "ds", name), data, 0o644))
	}
	must(t, os.Mkdir(filepath.Join(ma, "ds@v1"), 0o755))

	// Damage a byte in the middle of big.bin where the pack holds it (blobs
	// are stored as they are), and put the pack back under its name.
	big := files["big.bin"]
	needle := big[len(big)/2 : len(big)/2+64]
	var damaged string
	for key := range r.keys("objects/") {
		data := r.object(key)
		i := bytes.Index(data, needle)
		if i < 0 {
			continue
		}
		data[i+32] ^= 0x40
		_, err := r.s3.Client().PutObject(context.Background(), &s3sdk.PutObjectInput{
			Bucket: aws.String(r.bucket), Key: aws.String(key), Body: bytes.NewReader(data)})
		must(t, err)
		damaged = key
		break
	}
	if damaged == "" {
		t.Fatal("no object on the remote holds the middle of big.bin")
	}
	t.Logf("flipped a byte of %s", damaged)

	out, errOut, code := b.run("fsck", "--remote")
	if code != 1 || !strings.Contains(out, "BAD chunk") || !strings.Contains(out, "big.bin") {
		t.Fatalf("fsck --remote after the damage: exit %d, want 1 and a BAD chunk of big.bin\n%s%s", code, out, errOut)
	}
	t.Logf("fsck --remote:\n%s", out)

	mb := r.mount(b)
	waitForPath(t, filepath.Join(mb, "ds@v1"), slack)
	res := mustEIO(t, filepath.Join(mb, "ds@v1/big.bin"), big, slack)
	t.Logf("big.bin: EIO after %v and %d right bytes", res.took.Round(time.Millisecond), len(res.data))
	for name, data := range files {
		if name != "big.bin" {
			mustRead(t, filepath.Join(mb, "ds@v1", name), data, slack)
		}
	}
	// Read again, the damage is still found: no bad byte was kept on the
	// way to being refused.
	mustEIO(t, filepath.Join(mb, "ds@v1/big.bin"), big, slack)
	if errs := statusErrors(b); !strings.Contains(errs, "corrupt") {
		t.Errorf("mlfs status does not name the damage; its errors:\n%s", errs)
	}
}

// A machine whose remote stops answering (every connection reset) still
// lists every version it has seen, read or not, and its working trees;
// looking up a version it never fetched fails with EIO, but only the
// first lookup waits out the retries: the rest fail at once while the
// remote is out, so `ls -l` of the root does not take a retry budget per
// version. Once the remote is back, the versions read right.
func TestOfflineListing(t *testing.T) {
	needFUSE(t)
	r := newFaultRemote(t)
	a, b := r.machine(false), r.machine(true)
	ma := r.mount(a)
	mb := r.mount(b)
	must(t, os.Mkdir(filepath.Join(mb, "mine"), 0o755))
	must(t, os.WriteFile(filepath.Join(mb, "mine", "note"), []byte("written here\n"), 0o644))
	// Made after B mounted, while B can list names but read no object
	// (refused at once, not retried): B has their names, not their
	// version objects.
	objects := "/" + r.bucket + "/" + prefix + "/objects/"
	r.fail(faultproxy.Plan{Rule: func(req *http.Request, _ int) faultproxy.Fault {
		if req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, objects) {
			return faultproxy.Error
		}
		return faultproxy.None
	}, ErrorResponse: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>refused by the test</Message></Error>`)
	}})
	var names []string
	for _, ds := range []string{"alpha", "beta"} {
		must(t, os.Mkdir(filepath.Join(ma, ds), 0o755))
		for v := 1; v <= 4; v++ {
			must(t, os.WriteFile(filepath.Join(ma, ds, "f"), randomBytes(1000+v), 0o644))
			name := fmt.Sprintf("%s@v%d", ds, v)
			must(t, os.Mkdir(filepath.Join(ma, name), 0o755))
			names = append(names, name)
		}
	}
	t0 := time.Now()
	waitFor(t, "B to list A's versions", slack, func() bool {
		ents, err := os.ReadDir(mb)
		return err == nil && slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name() == names[len(names)-1] })
	})

	t.Logf("B listed them in %v", time.Since(t0).Round(time.Millisecond))
	r.fail(faultproxy.Plan{Reset: 1})
	time.Sleep(2 * time.Second) // past the store's cached listing of the remote
	t0 = time.Now()
	ents, err := os.ReadDir(mb)
	t.Logf("listing with the remote out took %v", time.Since(t0).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("listing the mount with the remote out of reach: %v", err)
	}
	listed := map[string]bool{}
	for _, e := range ents {
		listed[e.Name()] = true
	}
	for _, n := range []string{"mine", "runs"} {
		if !listed[n] {
			t.Errorf("%s not listed with the remote out of reach; listed: %v", n, slices.Sorted(maps.Keys(listed)))
		}
	}
	var seen []string
	for _, n := range names {
		if listed[n] {
			seen = append(seen, n)
		}
	}
	t.Logf("with the remote out, %d of the %d versions listed before are listed", len(seen), len(names))
	start := time.Now()
	var eio int
	for _, n := range names {
		_, err := os.Lstat(filepath.Join(mb, n))
		if errors.Is(err, syscall.EIO) || !listed[n] && errors.Is(err, os.ErrNotExist) {
			eio++
		} else if err != nil {
			t.Errorf("lstat %s: %v, want EIO or success", n, err)
		}
	}
	took := time.Since(start)
	t.Logf("lstat of %d versions never fetched, remote out: %d EIO in %v", len(names), eio, took.Round(time.Millisecond))
	if eio == 0 {
		t.Error("no lookup failed: were the versions fetched before the outage?")
	}
	if d := retryBudget(faultTimeout) + slack; took > d {
		t.Errorf("looking up %d versions took %v with the remote out; one retry budget and slack is %v", len(names), took, d)
	}
	if b, err := os.ReadFile(filepath.Join(mb, "mine", "note")); err != nil || string(b) != "written here\n" {
		t.Errorf("the working tree with the remote out: %q, %v", b, err)
	}

	r.heal()
	d := waitFor(t, "the versions to read once the remote is back", 5*time.Second+slack, func() bool {
		_, err := os.ReadFile(filepath.Join(mb, "beta@v4", "f"))
		return err == nil
	})
	t.Logf("read again %v after the remote was back", d.Round(time.Millisecond))
}
