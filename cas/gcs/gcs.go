package gcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mlfs/mlfs/cas"
)

// Options says where a store lives and how to reach it.
type Options struct {
	// Bucket is the bucket's name; it must exist. Required.
	Bucket string
	// Prefix is an optional object-name prefix such as "team/mlfs"; leading
	// and trailing slashes are ignored.
	Prefix string

	// Endpoint is the JSON API's base URL for an emulator, e.g.
	// "http://127.0.0.1:4443/storage/v1/"; requests to it go unauthenticated
	// and reads use the JSON API. Empty means Google Cloud Storage itself,
	// reached with Application Default Credentials. For any other set-up
	// build a client with storage.NewClient and pass it as Client.
	Endpoint string

	// SDKRetries keeps the SDK's own retries in the client Open builds.
	// By default that client makes a single attempt per request
	// (storage.RetryNever), because retrying is cas/retry's job (wrap the
	// store with Transient as its classifier); set SDKRetries when using
	// the bare Store instead.
	SDKRetries bool

	// Client, if set, is used as is, with its own retry settings, and
	// Endpoint and SDKRetries are ignored; Close then leaves it open. Tests
	// use it.
	Client *storage.Client
}

// Store is a cas.Store in a GCS bucket. See the package documentation for
// the layout.
type Store struct {
	client    *storage.Client
	ownClient bool // made by Open, so closed by Close
	closeOnce sync.Once
	closeErr  error
	bucket    *storage.BucketHandle
	name      string // bucket name
	prefix    string // "" or ends in "/"
	where     string // "gs://bucket/prefix", for errors
}

var _ cas.Store = (*Store)(nil)

// Open checks that the bucket is reachable and returns the store in it.
// Its error reads "gs://bucket/prefix: open: REASON", where REASON says
// what a refusal means (credentials, or no such bucket) and names the
// settings to check; errors.Unwrap of it gives REASON alone, for callers
// that name the store themselves.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Bucket == "" {
		return nil, fmt.Errorf("gcs store: no bucket given")
	}
	client, own := o.Client, false
	if client == nil {
		var err error
		if client, err = newClient(ctx, o); err != nil {
			return nil, fmt.Errorf("%s: open: %w", where(o.Bucket, o.Prefix), fmt.Errorf("check the credentials (%s): %w", credentialSettings, err))
		}
		own = true
	}
	s := New(client, o.Bucket, o.Prefix)
	s.ownClient = own
	if _, err := s.bucket.Attrs(ctx); err != nil {
		if own {
			client.Close()
		}
		return nil, fmt.Errorf("%s: open: %w", s.where, explainOpen(err))
	}
	return s, nil
}

// credentialSettings names where the credentials come from, for a
// message about a refusal: Application Default Credentials.
const credentialSettings = "GOOGLE_APPLICATION_CREDENTIALS, or gcloud auth application-default login"

// explainOpen says what the answer to Open's bucket lookup means.
func explainOpen(err error) error {
	switch {
	case Denied(err):
		return fmt.Errorf("refused: check the credentials (%s): %w", credentialSettings, err)
	case errors.Is(err, storage.ErrBucketNotExist) || httpCode(err) == http.StatusNotFound || status.Code(err) == codes.NotFound:
		return fmt.Errorf("no such bucket, or credentials it does not accept: check the bucket's name, and the credentials (%s): %w", credentialSettings, err)
	}
	return err
}

// Denied reports whether err says that GCS refused the request's
// credentials or their permissions: HTTP 401 or 403, or gRPC's
// Unauthenticated and PermissionDenied.
func Denied(err error) bool {
	if err == nil {
		return false
	}
	switch httpCode(err) {
	case http.StatusUnauthorized, http.StatusForbidden:
		return true
	}
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied:
		return true
	}
	return false
}

// httpCode is the HTTP status of a JSON API error, 0 for another error.
func httpCode(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

func where(bucket, prefix string) string { return "gs://" + bucket + "/" + strings.Trim(prefix, "/") }

func newClient(ctx context.Context, o Options) (*storage.Client, error) {
	var opts []option.ClientOption
	if o.Endpoint != "" {
		// An emulator takes no credentials, and serves reads on the JSON
		// API at the endpoint; the default XML reads would go to a public
		// host.
		opts = append(opts,
			option.WithEndpoint(o.Endpoint),
			option.WithoutAuthentication(),
			storage.WithJSONReads(),
		)
	}
	c, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, err
	}
	if !o.SDKRetries {
		c.SetRetry(storage.WithPolicy(storage.RetryNever))
	}
	return c, nil
}

// New returns the store under prefix in bucket, reached through client. It
// makes no request, and its Close leaves client open.
func New(client *storage.Client, bucket, prefix string) *Store {
	prefix = strings.Trim(prefix, "/")
	s := &Store{
		client: client,
		bucket: client.Bucket(bucket),
		name:   bucket,
		where:  where(bucket, prefix),
	}
	if prefix != "" {
		s.prefix = prefix + "/"
	}
	return s
}

// Client returns the GCS client the store uses.
func (s *Store) Client() *storage.Client { return s.client }

// Bucket returns the store's bucket name.
func (s *Store) Bucket() string { return s.name }

// Prefix returns the store's object-name prefix: empty, or ending in "/".
func (s *Store) Prefix() string { return s.prefix }

// String returns "gs://bucket/prefix".
func (s *Store) String() string { return s.where }

// ObjectKey returns the GCS object name of cas object id.
func (s *Store) ObjectKey(id cas.ID) string {
	h := id.String()
	return s.prefix + "objects/" + h[:2] + "/" + h
}

// RefKey returns the GCS object name of ref name.
func (s *Store) RefKey(name string) string { return s.prefix + "refs/" + name }

// fail wraps err from operation op on what, turning "no such object" into
// cas.ErrNotFound. The SDK's errors name no credentials.
func (s *Store) fail(op, what string, err error) error {
	switch {
	case errors.Is(err, storage.ErrObjectNotExist):
		err = cas.ErrNotFound
	case Denied(err):
		err = fmt.Errorf("refused: check the credentials (%s): %w", credentialSettings, err)
	}
	return fmt.Errorf("%s: %s %s: %w", s.where, op, what, err)
}

// isConditionFailed reports whether a conditional write lost: HTTP 412
// conditionNotMet from the JSON API, FailedPrecondition from gRPC.
func isConditionFailed(err error) bool {
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code == http.StatusPreconditionFailed {
		return true
	}
	return status.Code(err) == codes.FailedPrecondition
}

func isRangeRefused(err error) bool {
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code == http.StatusRequestedRangeNotSatisfiable {
		return true
	}
	return status.Code(err) == codes.OutOfRange
}

func readBody(r *storage.Reader) ([]byte, error) {
	var buf bytes.Buffer
	n := r.Remain()
	if n > 0 {
		buf.Grow(int(n))
	}
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	if n >= 0 && int64(buf.Len()) != n {
		return nil, fmt.Errorf("body of %d bytes, Content-Length %d: %w", buf.Len(), n, io.ErrUnexpectedEOF)
	}
	return buf.Bytes(), nil
}

// Transient reports whether err, from a Store, is worth another attempt:
// HTTP 408, 429 and 5xx but 501, their gRPC counterparts, timeouts, and
// connections that broke (reset, refused, closed, a body cut short), much
// as storage.ShouldRetry decides for the SDK's own retries. The answers
// cas.ErrNotFound, ErrExists, ErrCorrupt and ErrRange are not transient,
// nor is context.Canceled: someone canceled on purpose. It is the
// classifier to give cas/retry.
func Transient(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled),
		errors.Is(err, cas.ErrNotFound), errors.Is(err, cas.ErrExists),
		errors.Is(err, cas.ErrCorrupt), errors.Is(err, cas.ErrRange):
		return false
	case errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		c := ge.Code
		return c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500 && c != http.StatusNotImplemented
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Internal, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	if storage.ShouldRetry(err) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// getObject reads a whole GCS object.
func (s *Store) getObject(ctx context.Context, key string) ([]byte, error) {
	r, err := s.bucket.Object(key).NewReader(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return readBody(r)
}

func (s *Store) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := s.getObject(ctx, s.ObjectKey(id))
	if err != nil {
		return nil, s.fail("get", id.Short(), err)
	}
	if err := id.Verify(b); err != nil {
		return nil, fmt.Errorf("%s: get %s: %w", s.where, id.Short(), err)
	}
	return b, nil
}

// GetRange makes one ranged read in the common case. Only when GCS refuses
// the range (416: the offset is at or past the end, which includes every
// range of the empty object) does it ask Attrs for the size, to tell an
// empty result from cas.ErrRange the way cas.ClampRange does.
func (s *Store) GetRange(ctx context.Context, id cas.ID, off, length int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if off < 0 || length == 0 {
		// Nothing to read; only the size decides between empty and error.
		size, err := s.Stat(ctx, id)
		if err != nil {
			return nil, err
		}
		if _, _, err := cas.ClampRange(id, size, off, length); err != nil {
			return nil, err
		}
		return []byte{}, nil
	}
	if length < 0 {
		length = -1 // NewRangeReader's "to the end"
	}
	r, err := s.bucket.Object(s.ObjectKey(id)).NewRangeReader(ctx, off, length)
	if err != nil {
		if !isRangeRefused(err) {
			return nil, s.fail("get range of", id.Short(), err)
		}
		size, serr := s.Stat(ctx, id)
		if serr != nil {
			return nil, serr
		}
		if _, _, err := cas.ClampRange(id, size, off, length); err != nil {
			return nil, err
		}
		if off == size {
			return []byte{}, nil
		}
		// GCS refused a range inside the object: report the original error.
		return nil, s.fail("get range of", id.Short(), err)
	}
	defer r.Close()
	b, err := readBody(r)
	if err != nil {
		return nil, s.fail("get range of", id.Short(), err)
	}
	if r.Attrs.StartOffset != off {
		// A server that ignores the range sends the whole object.
		if r.Attrs.StartOffset != 0 || int64(len(b)) != r.Attrs.Size {
			return nil, fmt.Errorf("%s: get range of %s: asked for offset %d, got %d", s.where, id.Short(), off, r.Attrs.StartOffset)
		}
		lo, hi, err := cas.ClampRange(id, int64(len(b)), off, length)
		if err != nil {
			return nil, err
		}
		return b[lo:hi], nil
	}
	if length > 0 && int64(len(b)) > length {
		return nil, fmt.Errorf("%s: get range of %s: asked for %d bytes, got %d", s.where, id.Short(), length, len(b))
	}
	// A short body must be an error, never a short result, which callers
	// would take for the object's end.
	lo, hi, err := cas.ClampRange(id, r.Attrs.Size, off, length)
	if err != nil {
		return nil, s.fail("get range of", id.Short(), err)
	}
	if !r.Attrs.Decompressed && int64(len(b)) != hi-lo {
		return nil, s.fail("get range of", id.Short(), fmt.Errorf("%d bytes at %d of %d: %w", len(b), off, r.Attrs.Size, io.ErrUnexpectedEOF))
	}
	return b, nil
}

func (s *Store) Stat(ctx context.Context, id cas.ID) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	a, err := s.bucket.Object(s.ObjectKey(id)).Attrs(ctx)
	if err != nil {
		return 0, s.fail("stat", id.Short(), err)
	}
	return a.Size, nil
}

// create writes key only if it does not exist yet; see the package doc. A
// lost race comes back from Writer.Close as a 412.
func (s *Store) create(ctx context.Context, key string, data []byte, contentType string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // aborts the upload if Write fails
	w := s.bucket.Object(key).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.ContentType = contentType
	// One buffer the size of the data (the SDK rounds it up to 256 KiB)
	// instead of the default 16 MiB: enough to retry, and small objects
	// need no resumable session.
	w.ChunkSize = min(len(data)+1, googleapi.DefaultUploadChunkSize)
	if _, err := w.Write(data); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// Put asks Attrs first and uploads only when the object is absent. A
// metadata GET is the cheaper request class (a tenth of an insert or less)
// and carries no body, while mlfs's objects are mostly packs of many
// megabytes and re-putting existing content is the common case of a
// content-addressed store (adding a folder again, resuming an upload). An
// unconditional write would re-send all those bytes and, in a bucket with
// versioning, pile up a noncurrent version per re-put. The extra round trip
// for a new object is small next to uploading it. Two Puts racing past the
// Attrs both upload, conditionally: one creates the object and the other
// gets 412, which here means the same bytes are already stored.
func (s *Store) Put(ctx context.Context, id cas.ID, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.Stat(ctx, id)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, cas.ErrNotFound):
		return err
	}
	// The Writer copies data into its chunk buffer and drops it on Close,
	// so data is not kept.
	err = s.create(ctx, s.ObjectKey(id), data, "application/octet-stream")
	if err != nil && !isConditionFailed(err) {
		return s.fail("put", id.Short(), err)
	}
	return nil
}

// list calls fn for every object name under prefix, with its size.
func (s *Store) list(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	q := &storage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size"}); err != nil {
		return err
	}
	it := s.bucket.Objects(ctx, q)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(a.Name, a.Size); err != nil {
			return err
		}
	}
}

// callbackError marks an error that came from List's callback.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }
func (e callbackError) Unwrap() error { return e.err }

func (s *Store) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	base := s.prefix + "objects/"
	err := s.list(ctx, base, func(key string, size int64) error {
		h, ok := strings.CutPrefix(key, base)
		if !ok || len(h) != 3+2*cas.IDSize || h[2] != '/' {
			return nil // not an object: ignore stray names
		}
		id, err := cas.ParseID(h[3:])
		if err != nil || h[:2] != h[3:5] {
			return nil
		}
		if err := fn(id, size); err != nil {
			return callbackError{err}
		}
		return nil
	})
	var cb callbackError
	if errors.As(err, &cb) {
		return cb.err
	}
	if err != nil {
		return s.fail("list", "objects", err)
	}
	return nil
}

func (s *Store) Delete(ctx context.Context, id cas.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.bucket.Object(s.ObjectKey(id)).Delete(ctx)
	if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
		return s.fail("delete", id.Short(), err)
	}
	return nil
}

func (s *Store) CreateRef(ctx context.Context, name string, id cas.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := cas.CheckRefName(name); err != nil {
		return err
	}
	err := s.create(ctx, s.RefKey(name), []byte(id.String()+"\n"), "text/plain")
	if err != nil {
		if isConditionFailed(err) {
			return fmt.Errorf("%s: create ref %s: %w", s.where, name, cas.ErrExists)
		}
		return s.fail("create ref", name, err)
	}
	return nil
}

func (s *Store) GetRef(ctx context.Context, name string) (cas.ID, error) {
	if err := ctx.Err(); err != nil {
		return cas.ID{}, err
	}
	if err := cas.CheckRefName(name); err != nil {
		return cas.ID{}, err
	}
	return s.readRef(ctx, name)
}

func (s *Store) readRef(ctx context.Context, name string) (cas.ID, error) {
	b, err := s.getObject(ctx, s.RefKey(name))
	if err != nil {
		return cas.ID{}, s.fail("get ref", name, err)
	}
	id, err := cas.ParseID(strings.TrimSuffix(string(b), "\n"))
	if err != nil {
		return cas.ID{}, fmt.Errorf("%s: ref %s: %w", s.where, name, cas.ErrCorrupt)
	}
	return id, nil
}

// ListRefs lists the names first, then reads each ref: listings carry no
// object bodies. GCS lists names in order, but they are sorted here too so
// that emulators need not.
func (s *Store) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	var names []string
	if err := s.ListRefNames(ctx, prefix, func(name string) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return err
	}
	return cas.ReadRefs(ctx, names, s.readRef, fn)
}

// ListRefNames lists the names of refs under prefix with listing requests
// only (see cas.RefNamer).
func (s *Store) ListRefNames(ctx context.Context, prefix string, fn func(string) error) error {
	base := s.prefix + "refs/"
	err := s.list(ctx, base+prefix, func(key string, _ int64) error {
		name := strings.TrimPrefix(key, base)
		if cas.CheckRefName(name) != nil {
			return nil
		}
		return fn(name)
	})
	if err != nil {
		return s.fail("list refs", strconv.Quote(prefix), err)
	}
	return nil
}

func (s *Store) DeleteRef(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := cas.CheckRefName(name); err != nil {
		return err
	}
	err := s.bucket.Object(s.RefKey(name)).Delete(ctx)
	if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
		return s.fail("delete ref", name, err)
	}
	return nil
}

// Close flushes nothing, since every Put is durable when it returns. It
// closes the client if Open made it, and leaves a client passed in
// (Options.Client or New) open.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.ownClient {
			s.closeErr = s.client.Close()
		}
	})
	return s.closeErr
}
