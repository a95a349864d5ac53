package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/mlfs/mlfs/cas"
)

// DefaultRegion is the region used when Options.Region is empty.
const DefaultRegion = "us-east-1"

// Options says where a store lives and how to reach it.
type Options struct {
	// Bucket is the bucket's name; it must exist. Required.
	Bucket string
	// Prefix is an optional key prefix such as "team/mlfs"; leading and
	// trailing slashes are ignored.
	Prefix string

	// Endpoint is the service's base URL, e.g. "http://127.0.0.1:9000" for
	// an S3-compatible server; empty means AWS.
	Endpoint string
	// Region defaults to DefaultRegion.
	Region string
	// PathStyle addresses the bucket as endpoint/bucket/key instead of
	// bucket.endpoint/key; most S3-compatible servers need it.
	PathStyle bool
	// Credentials signs requests. If nil, the static credentials in
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN are
	// used, and requests go unsigned when those are unset. For the SDK's
	// full default chain (shared config, SSO, instance roles) build a client
	// with aws-sdk-go-v2/config and pass it as Client.
	Credentials aws.CredentialsProvider

	// SDKRetries keeps the SDK's standard retryer in the client Open
	// builds. By default that client makes a single attempt per request,
	// because retrying is cas/retry's job (wrap the store with Transient as
	// its classifier); set SDKRetries when using the bare Store instead.
	SDKRetries bool

	// Client, if set, is used as is, with its own retryer, and Endpoint,
	// Region, PathStyle, Credentials and SDKRetries are ignored. Tests use
	// it.
	Client *s3sdk.Client
}

// Store is a cas.Store in an S3 bucket. See the package documentation for
// the layout.
type Store struct {
	client *s3sdk.Client
	bucket string
	prefix string // "" or ends in "/"
	where  string // "s3://bucket/prefix", for errors
}

var _ cas.Store = (*Store)(nil)

// Open checks that the bucket is reachable and returns the store in it.
// Its error reads "s3://bucket/prefix: open: REASON", where REASON says
// what a refusal means (credentials, or no such bucket) and names the
// settings to check; errors.Unwrap of it gives REASON alone, for callers
// that name the store themselves.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Bucket == "" {
		return nil, fmt.Errorf("s3 store: no bucket given")
	}
	client := o.Client
	if client == nil {
		client = newClient(o)
	}
	s := New(client, o.Bucket, o.Prefix)
	if _, err := client.HeadBucket(ctx, &s3sdk.HeadBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		return nil, fmt.Errorf("%s: open: %w", s.where, explainOpen(err))
	}
	return s, nil
}

// credentialSettings names where the credentials come from, for a
// message about a refusal.
const credentialSettings = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, ~/.aws"

// explainOpen says what the answer to Open's HeadBucket means. versitygw
// (and other S3-compatible servers) answer 404 for an unknown access key,
// so a 404 may be the credentials as well as a missing bucket.
func explainOpen(err error) error {
	switch {
	case Denied(err):
		return fmt.Errorf("refused: check the credentials (%s): %w", credentialSettings, err)
	case errorCode(err) == "NoSuchBucket" || httpStatus(err) == http.StatusNotFound:
		return fmt.Errorf("no such bucket, or credentials it does not accept: check the bucket's name and the endpoint, and the credentials (%s): %w", credentialSettings, err)
	}
	return err
}

// Denied reports whether err says that S3 refused the request's
// credentials or their permissions: HTTP 401 or 403, the codes
// InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied and the
// expired-token ones, or no credentials found at all.
func Denied(err error) bool {
	if err == nil {
		return false
	}
	switch errorCode(err) {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "AllAccessDisabled",
		"ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidSecurity", "AccountProblem":
		return true
	}
	switch httpStatus(err) {
	case http.StatusUnauthorized, http.StatusForbidden:
		return true
	}
	// The SDK's error for a credential chain that found nothing has no
	// type of its own, hence the text.
	return strings.Contains(err.Error(), "failed to refresh cached credentials")
}

func newClient(o Options) *s3sdk.Client {
	region := o.Region
	if region == "" {
		region = DefaultRegion
	}
	creds := o.Credentials
	if creds == nil {
		if id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
			creds = credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("AWS_SESSION_TOKEN"))
		} else {
			creds = aws.AnonymousCredentials{}
		}
	}
	opts := s3sdk.Options{
		Region:       region,
		Credentials:  aws.NewCredentialsCache(creds),
		UsePathStyle: o.PathStyle,
		BaseEndpoint: endpoint(o.Endpoint),
	}
	if !o.SDKRetries {
		opts.Retryer = aws.NopRetryer{}
	}
	return s3sdk.New(opts)
}

func endpoint(e string) *string {
	if e == "" {
		return nil
	}
	return aws.String(e)
}

// New returns the store under prefix in bucket, reached through client. It
// makes no request.
func New(client *s3sdk.Client, bucket, prefix string) *Store {
	prefix = strings.Trim(prefix, "/")
	s := &Store{client: client, bucket: bucket, where: "s3://" + bucket + "/" + prefix}
	if prefix != "" {
		s.prefix = prefix + "/"
	}
	return s
}

// Client returns the S3 client the store uses.
func (s *Store) Client() *s3sdk.Client { return s.client }

// Bucket returns the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// Prefix returns the store's key prefix: empty, or ending in "/".
func (s *Store) Prefix() string { return s.prefix }

// String returns "s3://bucket/prefix".
func (s *Store) String() string { return s.where }

// ObjectKey returns the key of object id.
func (s *Store) ObjectKey(id cas.ID) string {
	h := id.String()
	return s.prefix + "objects/" + h[:2] + "/" + h
}

// RefKey returns the key of ref name.
func (s *Store) RefKey(name string) string { return s.prefix + "refs/" + name }

// fail wraps err from operation op on what, turning the S3 answers that
// mean "no such key" into cas.ErrNotFound.
func (s *Store) fail(op, what string, err error) error {
	switch {
	case isNotFound(err):
		err = cas.ErrNotFound
	case Denied(err):
		err = fmt.Errorf("refused: check the credentials (%s): %w", credentialSettings, err)
	}
	return fmt.Errorf("%s: %s %s: %w", s.where, op, what, err)
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	// HeadObject has no body, so its 404 may arrive with a generic code; a
	// missing bucket is not a missing object, though.
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "NoSuchBucket" {
		return false
	}
	return httpStatus(err) == http.StatusNotFound
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// getObject reads a whole S3 object.
func (s *Store) getObject(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3sdk.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return readBody(out.Body, out.ContentLength)
}

func readBody(r io.Reader, size *int64) ([]byte, error) {
	var buf bytes.Buffer
	if size != nil && *size > 0 {
		buf.Grow(int(*size))
	}
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	if size != nil && int64(buf.Len()) != *size {
		return nil, fmt.Errorf("body of %d bytes, Content-Length %d: %w", buf.Len(), *size, io.ErrUnexpectedEOF)
	}
	return buf.Bytes(), nil
}

// parseContentRange parses "bytes first-last/size"; size is -1 if the
// server sent "*".
func parseContentRange(s string) (first, last, size int64, err error) {
	r, ok := strings.CutPrefix(s, "bytes ")
	span, total, ok2 := strings.Cut(r, "/")
	a, b, ok3 := strings.Cut(span, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	size, err3 := int64(-1), error(nil)
	if total != "*" {
		size, err3 = strconv.ParseInt(total, 10, 64)
	}
	if err := errors.Join(err1, err2, err3); err != nil || first < 0 || last < first {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	return first, last, size, nil
}

// Transient reports whether err, from a Store, is worth another attempt:
// throttling (503 SlowDown, 429), server errors (5xx but 501), timeouts
// (408 RequestTimeout, a request or body read that timed out), and
// connections that broke (reset, refused, closed, a body cut short). The
// answers cas.ErrNotFound, ErrExists, ErrCorrupt and ErrRange are not
// transient, nor is context.Canceled: someone canceled on purpose. It is
// the classifier to give cas/retry.
func Transient(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled),
		errors.Is(err, cas.ErrNotFound), errors.Is(err, cas.ErrExists),
		errors.Is(err, cas.ErrCorrupt), errors.Is(err, cas.ErrRange):
		return false
	case errors.Is(err, io.ErrUnexpectedEOF),
		// The SDK's check of a response body against the checksum S3 sent
		// failed: bytes garbled in transit, which a re-read fixes. Its
		// error type is unexported, hence the text.
		strings.Contains(err.Error(), "checksum did not match"):
		return true
	}
	switch errorCode(err) {
	case "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable",
		"Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequestsException",
		"RequestTimeoutException", "IncompleteBody", "BadDigest":
		return true
	}
	switch st := httpStatus(err); {
	case st == http.StatusRequestTimeout, st == http.StatusTooManyRequests:
		return true
	case st >= 500 && st != http.StatusNotImplemented:
		return true
	case st != 0:
		return false // an answer from S3 that retrying will not change
	}
	// The SDK's mark for a request not sent or an answer not received;
	// then any network error, such as a reset while reading a body.
	var ce interface{ ConnectionError() bool }
	if errors.As(err, &ce) && ce.ConnectionError() {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
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

// GetRange makes one ranged GetObject in the common case. Only when S3
// refuses the range (416: the offset is at or past the end, which includes
// every range of the empty object) does it ask HeadObject for the size, to
// tell an empty result from cas.ErrRange the way cas.ClampRange does.
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
	rng := "bytes=" + strconv.FormatInt(off, 10) + "-"
	if length > 0 {
		rng += strconv.FormatInt(off+length-1, 10)
	}
	key := s.ObjectKey(id)
	out, err := s.client.GetObject(ctx, &s3sdk.GetObjectInput{Bucket: &s.bucket, Key: &key, Range: &rng})
	if err != nil {
		if httpStatus(err) != http.StatusRequestedRangeNotSatisfiable && errorCode(err) != "InvalidRange" {
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
		// S3 refused a range inside the object: report the original error.
		return nil, s.fail("get range of", id.Short(), err)
	}
	defer out.Body.Close()
	b, err := readBody(out.Body, out.ContentLength)
	if err != nil {
		return nil, s.fail("get range of", id.Short(), err)
	}
	if out.ContentRange == nil {
		// A server that ignores Range sends the whole object (200).
		lo, hi, err := cas.ClampRange(id, int64(len(b)), off, length)
		if err != nil {
			return nil, err
		}
		return b[lo:hi], nil
	}
	if err := checkRange(id, *out.ContentRange, off, length, len(b)); err != nil {
		return nil, s.fail("get range of", id.Short(), err)
	}
	return b, nil
}

// checkRange makes sure that the n bytes of a ranged GetObject are the
// ones asked for, all of them: a short body must be an error, never a
// short result, which GetRange's callers would take for the object's end.
func checkRange(id cas.ID, contentRange string, off, length int64, n int) error {
	first, last, size, err := parseContentRange(contentRange)
	if err != nil {
		return err
	}
	if first != off {
		return fmt.Errorf("asked for offset %d, got %s", off, contentRange)
	}
	want := last - first + 1
	if size >= 0 {
		lo, hi, err := cas.ClampRange(id, size, off, length)
		if err != nil {
			return err
		}
		if hi-lo != want {
			return fmt.Errorf("asked for %d bytes at %d, got %s", length, off, contentRange)
		}
	} else if length > 0 && want > length {
		return fmt.Errorf("asked for %d bytes, got %s", length, contentRange)
	}
	if int64(n) != want {
		return fmt.Errorf("body of %d bytes for %s: %w", n, contentRange, io.ErrUnexpectedEOF)
	}
	return nil
}

func (s *Store) Stat(ctx context.Context, id cas.ID) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	key := s.ObjectKey(id)
	out, err := s.client.HeadObject(ctx, &s3sdk.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return 0, s.fail("stat", id.Short(), err)
	}
	if out.ContentLength == nil {
		return 0, fmt.Errorf("%s: stat %s: no Content-Length", s.where, id.Short())
	}
	return *out.ContentLength, nil
}

// Put asks HeadObject first and uploads only when the object is absent.
// HEAD is the cheaper request class (priced like GET, a tenth of a PUT or
// less) and carries no body, while mlfs's objects are mostly packs of many
// megabytes and re-putting existing content is the common case of a
// content-addressed store (adding a folder again, resuming an upload). An
// unconditional PUT would re-send all those bytes and, in a versioned
// bucket, pile up a noncurrent version per re-put. The extra round trip for
// a new object is small next to uploading it. Two Puts racing past the HEAD
// both upload the same bytes, which is harmless: the last whole copy wins.
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
	key := s.ObjectKey(id)
	// The SDK reads the body while sending and may re-read it on a retry,
	// but never after PutObject returns, so data is not kept.
	_, err = s.client.PutObject(ctx, &s3sdk.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/octet-stream"),
	})
	if err != nil {
		return s.fail("put", id.Short(), err)
	}
	return nil
}

// list calls fn for every key under prefix, with its size.
func (s *Store) list(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	p := s3sdk.NewListObjectsV2Paginator(s.client, &s3sdk.ListObjectsV2Input{
		Bucket: &s.bucket,
		Prefix: aws.String(prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			if o.Key == nil {
				continue
			}
			if err := fn(*o.Key, aws.ToInt64(o.Size)); err != nil {
				return err
			}
		}
	}
	return nil
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
			return nil // not an object: ignore stray keys
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
	key := s.ObjectKey(id)
	// DeleteObject of an absent key succeeds in S3.
	if _, err := s.client.DeleteObject(ctx, &s3sdk.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil && !isNotFound(err) {
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
	key := s.RefKey(name)
	body := []byte(id.String() + "\n")
	_, err := s.client.PutObject(ctx, &s3sdk.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("text/plain"),
		IfNoneMatch:   aws.String("*"), // create only if absent; see the package doc
	})
	if err != nil {
		if isConditionFailed(err) {
			return fmt.Errorf("%s: create ref %s: %w", s.where, name, cas.ErrExists)
		}
		return s.fail("create ref", name, err)
	}
	return nil
}

// isConditionFailed reports whether a conditional PutObject lost: 412 when
// the key exists, 409 when another conditional write of it is in flight.
func isConditionFailed(err error) bool {
	switch errorCode(err) {
	case "PreconditionFailed", "ConditionalRequestConflict":
		return true
	}
	switch httpStatus(err) {
	case http.StatusPreconditionFailed, http.StatusConflict:
		return true
	}
	return false
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

// ListRefs lists the names first, then reads each ref: S3 listings carry no
// object bodies. Names are sorted here too, since not every S3-compatible
// service (nor S3 directory buckets) lists keys in order.
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
	key := s.RefKey(name)
	if _, err := s.client.DeleteObject(ctx, &s3sdk.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil && !isNotFound(err) {
		return s.fail("delete ref", name, err)
	}
	return nil
}

// Close releases nothing: every Put is durable when it returns, and the
// client (which may be shared) stays usable.
func (s *Store) Close() error { return nil }
