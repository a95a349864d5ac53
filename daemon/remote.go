package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/azure"
	"github.com/mlfs/mlfs/cas/gcs"
	"github.com/mlfs/mlfs/cas/local"
	"github.com/mlfs/mlfs/cas/pack"
	"github.com/mlfs/mlfs/cas/retry"
	"github.com/mlfs/mlfs/cas/s3"
	"github.com/mlfs/mlfs/config"
	"github.com/mlfs/mlfs/repo"
)

// remoteBackend is an opened remote: the bare backend and what the
// layers above need to know of it.
type remoteBackend struct {
	store cas.Store
	// kind labels its metrics: "s3", "gcs", "azure" or "file".
	kind string
	// transient classifies its errors for retrying; nil for none.
	transient func(error) bool
	// where names it in messages, without credentials.
	where string
	// timeout bounds one request.
	timeout time.Duration
}

// openBackend opens the bare backend of a remote URL. Credentials come
// from each SDK's own chain: for S3 the AWS environment variables, shared
// config and profiles, and instance roles; for GCS Application Default
// Credentials (or STORAGE_EMULATOR_HOST); for Azure a connection string or
// account key from AZURE_STORAGE_*.
//
// Its errors say what failed and, for a refusal, which settings to check,
// but do not name the remote: each caller does, once (remoteWhere).
func openBackend(ctx context.Context, rc config.Remote, log *slog.Logger) (*remoteBackend, error) {
	rb, err := openBare(ctx, rc, log)
	if err != nil {
		return nil, err
	}
	if rb.timeout, err = rc.RequestTimeout(); err != nil {
		rb.store.Close()
		return nil, err
	}
	return rb, nil
}

// remoteWhere names rc in messages: its URL without credentials.
func remoteWhere(rc config.Remote) (string, error) {
	if err := config.CheckRemote(rc.URL); err != nil {
		return "", err
	}
	u, _ := url.Parse(rc.URL)
	return u.Redacted(), nil
}

func openBare(ctx context.Context, rc config.Remote, log *slog.Logger) (*remoteBackend, error) {
	if err := config.CheckRemote(rc.URL); err != nil {
		return nil, err
	}
	u, _ := url.Parse(rc.URL)
	prefix := strings.Trim(u.Path, "/")
	where := u.Redacted()
	switch u.Scheme {
	case "file":
		// The folder must be there: an unmounted share must not quietly
		// become an empty remote of this machine's own.
		if fi, err := os.Stat(u.Path); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("no folder %s (create it, or mount the share it is on): %w", u.Path, errNoFolder)
		}
		st, err := local.Open(u.Path)
		if err != nil {
			return nil, err
		}
		return &remoteBackend{store: st, kind: "file", where: where}, nil
	case "s3":
		opts := []func(*awsconfig.LoadOptions) error{}
		if rc.Region != "" {
			opts = append(opts, awsconfig.WithRegion(rc.Region))
		}
		// The SDK's own log lines (checksums it skips, IMDS fallbacks) are
		// not the user's business; its errors reach them wrapped in ours.
		opts = append(opts, awsconfig.WithLogger(logging.Nop{}))
		acfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("AWS configuration: %w", err)
		}
		if acfg.Region == "" {
			acfg.Region = s3.DefaultRegion
		}
		client := s3sdk.NewFromConfig(acfg, func(o *s3sdk.Options) {
			if rc.Endpoint != "" {
				o.BaseEndpoint = aws.String(rc.Endpoint)
			}
			o.UsePathStyle = rc.PathStyle
			o.Retryer = aws.NopRetryer{} // cas/retry retries, classified by s3.Transient
			o.DisableLogOutputChecksumValidationSkipped = true
		})
		st, err := s3.Open(ctx, s3.Options{Bucket: u.Host, Prefix: prefix, Client: client})
		if err != nil {
			return nil, openReason(err)
		}
		return &remoteBackend{store: st, kind: "s3", where: where, transient: s3.Transient}, nil
	case "gs":
		o := gcs.Options{Bucket: u.Host, Prefix: prefix}
		if rc.Endpoint != "" {
			o.Endpoint = strings.TrimSuffix(rc.Endpoint, "/") + "/storage/v1/"
		}
		st, err := gcs.Open(ctx, o)
		if err != nil {
			return nil, openReason(err)
		}
		return &remoteBackend{store: st, kind: "gcs", where: where, transient: gcs.Transient}, nil
	case "az":
		return openAzure(ctx, rc, u.Host, prefix, where)
	}
	return nil, fmt.Errorf("unknown scheme %q", u.Scheme)
}

// openReason is the reason an Open of cas/s3, cas/gcs or cas/azure gives,
// without the store's name ("s3://bucket/prefix: open: "), which the
// caller of openBackend gives as the remote's URL.
func openReason(err error) error {
	if r := errors.Unwrap(err); r != nil {
		return r
	}
	return err
}

func openAzure(ctx context.Context, rc config.Remote, container, prefix, where string) (*remoteBackend, error) {
	st, err := azure.Open(ctx, azure.Options{Container: container, Prefix: prefix, Account: rc.Account, Endpoint: rc.Endpoint})
	if err != nil {
		return nil, openReason(err)
	}
	return &remoteBackend{store: st, kind: "azure", where: where, transient: azure.Transient}, nil
}

// CheckRemote opens the remote rc, which checks that its bucket or folder
// can be reached with the credentials at hand, and closes it. Its error
// names the remote once, by its URL without credentials ("s3://bucket/p:
// REASON"), and for a refusal names the settings of that cloud to check.
func CheckRemote(ctx context.Context, rc config.Remote) error {
	where, err := remoteWhere(rc)
	if err != nil {
		return err
	}
	if err := checkRemote(ctx, rc); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

func checkRemote(ctx context.Context, rc config.Remote) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
		}
		var rb *remoteBackend
		if rb, err = openBackend(ctx, rc, nil); err == nil {
			return rb.store.Close()
		}
		// Only a passing fault (a 503, a reset) is worth another look.
		if !s3.Transient(err) && !gcs.Transient(err) && !azure.Transient(err) {
			return err
		}
	}
	return err
}

// FsckRemote checks the remote itself, bypassing the local tier: every
// object that a name on the remote reaches is fetched from the remote and
// verified. It needs no daemon (the remote is shared, the check reads).
func FsckRemote(ctx context.Context, cfg *config.Config, report func(repo.Problem), log *slog.Logger) (string, repo.FsckStats, error) {
	rc, err := cfg.RemoteSettings()
	if err != nil {
		return "", repo.FsckStats{}, err
	}
	if rc.URL == "" {
		return "", repo.FsckStats{}, ErrNoRemote
	}
	where, err := remoteWhere(rc)
	if err != nil {
		return "", repo.FsckStats{}, err
	}
	rb, err := openBackend(ctx, rc, log)
	if err != nil {
		return where, repo.FsckStats{}, fmt.Errorf("remote %s: %w", where, err)
	}
	wrapped, _, err := rb.wrap(nil, log)
	if err != nil {
		return rb.where, repo.FsckStats{}, err
	}
	rp, err := pack.New(ctx, wrapped, pack.Options{Log: log})
	if err != nil {
		wrapped.Close()
		return rb.where, repo.FsckStats{}, fmt.Errorf("remote %s: %w", rb.where, err)
	}
	defer rp.Close()
	st, err := repo.New(rp, nil, "", log).Fsck(ctx, report)
	return rb.where, st, err
}

// errNoFolder: a file remote's folder is missing, which is how an
// unmounted share looks; it may come back.
var errNoFolder = errors.New("the folder is not there")

// passing reports whether err is a fault that may pass by itself (a
// timeout, a reset, a 503), not a refusal such as 403 or 404.
func passing(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errNoFolder) || errors.Is(err, retry.ErrAttemptTimeout) ||
		s3.Transient(err) || gcs.Transient(err) || azure.Transient(err)
}
