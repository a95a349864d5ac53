package azure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/mlfs/mlfs/cas"
)

// Options says where a store lives and how to reach it. Options win over
// the environment; see the package documentation for the order.
type Options struct {
	// Container is the container's name; it must exist. Required.
	Container string
	// Prefix is an optional blob-name prefix such as "team/mlfs"; leading
	// and trailing slashes are ignored.
	Prefix string

	// ConnectionString, as the portal shows it; if empty,
	// AZURE_STORAGE_CONNECTION_STRING is used unless Account, Endpoint or
	// Credential is set.
	ConnectionString string
	// Account is the storage account's name; if empty,
	// AZURE_STORAGE_ACCOUNT. Its shared key is read from AZURE_STORAGE_KEY.
	Account string
	// Endpoint is the blob service's URL; empty means
	// https://<account>.blob.core.windows.net/.
	Endpoint string
	// Credential, if set, signs requests to Endpoint (or the account's
	// default endpoint) with Entra ID tokens, e.g. from azidentity.
	Credential azcore.TokenCredential

	// SDKRetries keeps the SDK's own retry policy in the client Open
	// builds. By default that client makes a single attempt per request,
	// because retrying is cas/retry's job (wrap the store with Transient as
	// its classifier); set SDKRetries when using the bare Store instead.
	SDKRetries bool

	// Client, if set, is used as is, and the fields above but Container and
	// Prefix are ignored. Tests use it.
	Client *azblob.Client
}

// Store is a cas.Store in an Azure Blob container. See the package
// documentation for the layout.
type Store struct {
	client    *azblob.Client
	container *container.Client
	name      string // container name
	prefix    string // "" or ends in "/"
	where     string // "az://container/prefix", for errors
}

var _ cas.Store = (*Store)(nil)

// Open checks that the container is reachable and returns the store in it.
// Its error reads "az://container/prefix: open: REASON", where REASON says
// what a refusal means (credentials, or no such container) and names the
// settings to check; errors.Unwrap of it gives REASON alone, for callers
// that name the store themselves.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Container == "" {
		return nil, fmt.Errorf("azure store: no container given")
	}
	client := o.Client
	if client == nil {
		var err error
		if client, err = newClient(o); err != nil {
			return nil, fmt.Errorf("%s: open: %w", where(o.Container, o.Prefix), err)
		}
	}
	s := New(client, o.Container, o.Prefix)
	if _, err := s.container.GetProperties(ctx, nil); err != nil {
		return nil, fmt.Errorf("%s: open: %w", s.where, explainOpen(err))
	}
	return s, nil
}

// credentialSettings names where the credentials come from, for a
// message about a refusal.
const credentialSettings = "AZURE_STORAGE_CONNECTION_STRING, or the account (AZURE_STORAGE_ACCOUNT) and AZURE_STORAGE_KEY"

// explainOpen says what the answer to Open's container lookup means, on
// one line.
func explainOpen(err error) error {
	switch {
	case Denied(err):
		return fmt.Errorf("refused: check the credentials (%s): %w", credentialSettings, tidy(err))
	case bloberror.HasCode(err, bloberror.ContainerNotFound, bloberror.ResourceNotFound) || statusCode(err) == http.StatusNotFound:
		return fmt.Errorf("no such container, or credentials it does not accept: check the container's name and the account, and the credentials (%s): %w", credentialSettings, tidy(err))
	}
	return tidy(err)
}

// Denied reports whether err says that Azure refused the request's
// credentials or their permissions: HTTP 401 or 403, or the codes
// AuthenticationFailed, AuthorizationFailure and their kin.
func Denied(err error) bool {
	if err == nil {
		return false
	}
	if bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.AuthorizationFailure,
		bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationProtocolMismatch,
		bloberror.AuthorizationResourceTypeMismatch, bloberror.AuthorizationServiceMismatch,
		bloberror.AuthorizationSourceIPMismatch, bloberror.InsufficientAccountPermissions,
		bloberror.InvalidAuthenticationInfo, bloberror.NoAuthenticationInformation, bloberror.AccountIsDisabled) {
		return true
	}
	switch statusCode(err) {
	case http.StatusUnauthorized, http.StatusForbidden:
		return true
	}
	return false
}

// statusCode is the HTTP status of a service error, 0 for another error.
func statusCode(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func where(container, prefix string) string {
	return "az://" + container + "/" + strings.Trim(prefix, "/")
}

func newClient(o Options) (*azblob.Client, error) {
	var co *azblob.ClientOptions
	if !o.SDKRetries {
		// A negative count means one try and no retries.
		co = &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}}
	}
	if o.ConnectionString != "" {
		return azblob.NewClientFromConnectionString(o.ConnectionString, co)
	}
	explicit := o.Account != "" || o.Endpoint != "" || o.Credential != nil
	if cs := os.Getenv("AZURE_STORAGE_CONNECTION_STRING"); cs != "" && !explicit {
		return azblob.NewClientFromConnectionString(cs, co)
	}
	account := o.Account
	if account == "" {
		account = os.Getenv("AZURE_STORAGE_ACCOUNT")
	}
	endpoint := o.Endpoint
	if endpoint == "" && account != "" {
		endpoint = "https://" + account + ".blob.core.windows.net/"
	}
	if endpoint == "" {
		return nil, fmt.Errorf("no account: set a connection string, an account (or AZURE_STORAGE_ACCOUNT) or an endpoint")
	}
	if o.Credential != nil {
		return azblob.NewClient(endpoint, o.Credential, co)
	}
	if key := os.Getenv("AZURE_STORAGE_KEY"); key != "" && account != "" {
		cred, err := azblob.NewSharedKeyCredential(account, key)
		if err != nil {
			return nil, fmt.Errorf("AZURE_STORAGE_KEY is not a base64 shared key: %w", err)
		}
		return azblob.NewClientWithSharedKeyCredential(endpoint, cred, co)
	}
	// A public container, or a SAS token in the endpoint's query.
	return azblob.NewClientWithNoCredential(endpoint, co)
}

// New returns the store under prefix in the named container, reached
// through client. It makes no request.
func New(client *azblob.Client, containerName, prefix string) *Store {
	prefix = strings.Trim(prefix, "/")
	s := &Store{
		client:    client,
		container: client.ServiceClient().NewContainerClient(containerName),
		name:      containerName,
		where:     where(containerName, prefix),
	}
	if prefix != "" {
		s.prefix = prefix + "/"
	}
	return s
}

// Client returns the azblob client the store uses.
func (s *Store) Client() *azblob.Client { return s.client }

// Container returns the store's container name.
func (s *Store) Container() string { return s.name }

// Prefix returns the store's blob-name prefix: empty, or ending in "/".
func (s *Store) Prefix() string { return s.prefix }

// String returns "az://container/prefix".
func (s *Store) String() string { return s.where }

// ObjectKey returns the blob name of object id.
func (s *Store) ObjectKey(id cas.ID) string {
	h := id.String()
	return s.prefix + "objects/" + h[:2] + "/" + h
}

// RefKey returns the blob name of ref name.
func (s *Store) RefKey(name string) string { return s.prefix + "refs/" + name }

func (s *Store) blob(key string) *blob.Client { return s.container.NewBlobClient(key) }

// fail wraps err from operation op on what, turning "no such blob" into
// cas.ErrNotFound.
func (s *Store) fail(op, what string, err error) error {
	switch {
	case isNotFound(err):
		err = cas.ErrNotFound
	case Denied(err):
		err = fmt.Errorf("refused: check the credentials (%s): %w", credentialSettings, tidy(err))
	default:
		err = tidy(err)
	}
	return fmt.Errorf("%s: %s %s: %w", s.where, op, what, err)
}

// isNotFound reports whether err says the blob does not exist. A missing
// container is not a missing object (as a missing bucket is not in
// cas/s3): reporting it as ErrNotFound would make a deleted or mistyped
// container look like an empty store.
func isNotFound(err error) bool {
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return true
	}
	var re *azcore.ResponseError
	// A HEAD's 404 may come without an error code.
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound && re.ErrorCode == ""
}

// isConditionFailed reports whether a create-if-absent upload lost: 409
// BlobAlreadyExists or 412 ConditionNotMet; see the package doc.
func isConditionFailed(err error) bool {
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return true
	}
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusPreconditionFailed
}

func isRangeRefused(err error) bool {
	var re *azcore.ResponseError
	return bloberror.HasCode(err, bloberror.InvalidRange) ||
		errors.As(err, &re) && re.StatusCode == http.StatusRequestedRangeNotSatisfiable
}

// responseError shows an *azcore.ResponseError on one line. The SDK's own
// message spans a dozen lines with the response body.
type responseError struct{ err *azcore.ResponseError }

func (e responseError) Error() string {
	status := strconv.Itoa(e.err.StatusCode)
	if r := e.err.RawResponse; r != nil && r.Status != "" {
		status = strings.TrimSuffix(r.Status, ".")
	}
	if e.err.ErrorCode != "" {
		return "HTTP " + status + " (" + e.err.ErrorCode + ")"
	}
	return "HTTP " + status
}

func (e responseError) Unwrap() error { return e.err }

// tidy makes err fit for a message: one line for a service error, and no
// query string (which may hold a SAS token) for a transport error.
func tidy(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return responseError{re}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if i := strings.IndexByte(ue.URL, '?'); i >= 0 {
			return &url.Error{Op: ue.Op, URL: ue.URL[:i], Err: ue.Err}
		}
	}
	return err
}

// errShort marks a body that ended before the bytes the response promised.
// It wraps io.ErrUnexpectedEOF, so Transient says another try may help.
func errShort(got, want int64) error {
	return fmt.Errorf("short body: %d of %d bytes: %w", got, want, io.ErrUnexpectedEOF)
}

// readN reads exactly n bytes from r and checks that nothing follows.
func readN(r io.Reader, n int64) ([]byte, error) {
	b := make([]byte, n)
	got, err := io.ReadFull(r, b)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, errShort(int64(got), n)
	}
	if err != nil {
		return nil, err
	}
	var one [1]byte
	if m, _ := io.ReadFull(r, one[:]); m > 0 {
		return nil, fmt.Errorf("body longer than the %d bytes promised", n)
	}
	return b, nil
}

// download reads the whole of blob key.
func (s *Store) download(ctx context.Context, key string) ([]byte, error) {
	resp, err := s.blob(key).DownloadStream(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength == nil {
		var buf bytes.Buffer
		_, err := buf.ReadFrom(resp.Body)
		return buf.Bytes(), err
	}
	return readN(resp.Body, *resp.ContentLength)
}

func (s *Store) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := s.download(ctx, s.ObjectKey(id))
	if err != nil {
		return nil, s.fail("get", id.Short(), err)
	}
	if err := id.Verify(b); err != nil {
		return nil, fmt.Errorf("%s: get %s: %w", s.where, id.Short(), err)
	}
	return b, nil
}

// GetRange makes one ranged download in the common case. Only when the
// service refuses the range (416: the offset is at or past the end, which
// includes every range of the empty blob) does it ask for the size, to tell
// an empty result from cas.ErrRange the way cas.ClampRange does.
//
// The answer must hold exactly the bytes asked for, clamped to the size
// that Content-Range reports: a body cut short (a dropped connection, a
// proxy) is an error, never a shorter result, since callers take a short
// result to mean the end of the object.
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
	count := length
	if count < 0 {
		// To the end, spelled as a range that ends past it: HTTPRange's
		// own "to the end" is no Range header at offset 0, and then no
		// Content-Range comes back to check the body against.
		count = math.MaxInt64 - off
	}
	resp, err := s.blob(s.ObjectKey(id)).DownloadStream(ctx, &blob.DownloadStreamOptions{
		Range: blob.HTTPRange{Offset: off, Count: count},
	})
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
		// A range refused inside the object: report the original error.
		return nil, s.fail("get range of", id.Short(), err)
	}
	defer resp.Body.Close()
	b, err := readRange(resp, id, off, length)
	if err != nil {
		return nil, s.fail("get range of", id.Short(), err)
	}
	return b, nil
}

// readRange reads the body of a ranged download and checks it holds the
// bytes asked for.
func readRange(resp blob.DownloadStreamResponse, id cas.ID, off, length int64) ([]byte, error) {
	if resp.ContentLength == nil {
		return nil, fmt.Errorf("no Content-Length")
	}
	n := *resp.ContentLength
	if resp.ContentRange == nil {
		// 200 and the whole object: a server that ignores Range.
		b, err := readN(resp.Body, n)
		if err != nil {
			return nil, err
		}
		lo, hi, err := cas.ClampRange(id, n, off, length)
		if err != nil {
			return nil, err
		}
		return b[lo:hi], nil
	}
	first, last, size, err := parseContentRange(*resp.ContentRange)
	if err != nil {
		return nil, err
	}
	lo, hi, err := cas.ClampRange(id, size, off, length)
	if err != nil {
		return nil, err
	}
	if first != lo || last != hi-1 || n != hi-lo {
		return nil, fmt.Errorf("asked for bytes %d-%d of %d, got %q with %d bytes", lo, hi-1, size, *resp.ContentRange, n)
	}
	return readN(resp.Body, n)
}

// parseContentRange parses "bytes first-last/size", where last+1 is the
// end of the span.
func parseContentRange(v string) (first, last, size int64, err error) {
	bad := fmt.Errorf("bad Content-Range %q", v)
	r, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, bad
	}
	span, total, ok := strings.Cut(r, "/")
	a, b, ok2 := strings.Cut(span, "-")
	if !ok || !ok2 {
		return 0, 0, 0, bad
	}
	var e1, e2, e3 error
	first, e1 = strconv.ParseInt(a, 10, 64)
	last, e2 = strconv.ParseInt(b, 10, 64)
	size, e3 = strconv.ParseInt(total, 10, 64)
	if e1 != nil || e2 != nil || e3 != nil || first < 0 || last < first-1 || size <= last {
		return 0, 0, 0, bad
	}
	if last < first && first != size {
		// Only an empty range at the very end may read nothing: Azure
		// answers it with 416, Azurite with 206 and "bytes size-(size-1)".
		return 0, 0, 0, bad
	}
	return first, last, size, nil
}

func (s *Store) Stat(ctx context.Context, id cas.ID) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p, err := s.blob(s.ObjectKey(id)).GetProperties(ctx, nil)
	if err != nil {
		return 0, s.fail("stat", id.Short(), err)
	}
	if p.ContentLength == nil {
		return 0, fmt.Errorf("%s: stat %s: no Content-Length", s.where, id.Short())
	}
	return *p.ContentLength, nil
}

// Put asks for the blob's properties first and uploads only when it is
// absent, for the reasons cas/s3's Put gives: a HEAD is a cheaper request
// class and carries no body, and re-putting existing content is the common
// case. The upload itself is unconditional, as in cas/s3: each Put then
// returns only once a whole copy is committed, and two Puts racing past the
// HEAD write the same bytes, the last whole copy winning.
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
	// UploadBuffer reads data (up to 256 MiB in one Put Blob) but does not
	// keep it after returning.
	if err := s.upload(ctx, s.ObjectKey(id), data, "application/octet-stream", nil); err != nil {
		return s.fail("put", id.Short(), err)
	}
	return nil
}

func (s *Store) upload(ctx context.Context, key string, data []byte, contentType string, cond *blob.AccessConditions) error {
	_, err := s.container.NewBlockBlobClient(key).UploadBuffer(ctx, data, &blockblob.UploadBufferOptions{
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr(contentType)},
		AccessConditions: cond,
	})
	return err
}

// list calls fn for every blob name under prefix, with its size.
func (s *Store) list(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	p := s.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil {
				continue
			}
			var size int64
			if b.Properties != nil && b.Properties.ContentLength != nil {
				size = *b.Properties.ContentLength
			}
			if err := fn(*b.Name, size); err != nil {
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
			return nil // not an object: ignore stray blobs
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

// deleteBlob removes key; an absent blob is not an error. Snapshots go
// with it, since the service refuses to delete a blob that has any.
func (s *Store) deleteBlob(ctx context.Context, key string) error {
	_, err := s.blob(key).Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude)})
	if err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

func (s *Store) Delete(ctx context.Context, id cas.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.deleteBlob(ctx, s.ObjectKey(id)); err != nil {
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
	// Create only if absent; see the package doc.
	ifAbsent := &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}
	err := s.upload(ctx, s.RefKey(name), []byte(id.String()+"\n"), "text/plain", ifAbsent)
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
	b, err := s.download(ctx, s.RefKey(name))
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
// blob contents. Azure lists names in order, but cas.ReadRefs sorts them
// anyway.
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
	if err := s.deleteBlob(ctx, s.RefKey(name)); err != nil {
		return s.fail("delete ref", name, err)
	}
	return nil
}

// Close releases nothing: every Put is durable when it returns, and the
// client (which may be shared) stays usable.
func (s *Store) Close() error { return nil }

// Transient reports whether err, from this package's store, is worth
// another try: the service was busy or failed (HTTP 408, 429, 500, 502,
// 503, 504), or the connection was refused, reset, cut short or timed out.
// Answers that another try would only repeat are not: authentication and
// permission (401, 403), not-found, a lost CreateRef, a refused range, and
// corrupt data. A canceled context is not transient; a deadline is, since
// a retry layer may give each try its own, and that layer must itself stop
// once its caller's context is done.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	for _, permanent := range []error{cas.ErrNotFound, cas.ErrExists, cas.ErrRange, cas.ErrCorrupt} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
