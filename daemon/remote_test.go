package daemon

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mlfs/mlfs/config"
	"github.com/mlfs/mlfs/internal/emulators"
)

// checkRefusal checks the error of CheckRemote for a remote that refuses:
// it names the remote's URL once and at the start, says what the refusal
// means (want), names the cloud's credential settings (vars), and shows
// none of secrets.
func checkRefusal(t *testing.T, err error, url string, want string, vars []string, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("CheckRemote of %s succeeded", url)
	}
	msg := err.Error()
	t.Logf("error: %s", msg)
	if !strings.HasPrefix(msg, url+": ") || strings.Count(msg, url) != 1 {
		t.Errorf("the error does not name %s once, at its start: %s", url, msg)
	}
	if strings.Contains(msg, "remote ") || strings.Contains(msg, ": open: ") {
		t.Errorf("the error repeats a layer's prefix: %s", msg)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("the error does not say %q: %s", want, msg)
	}
	for _, v := range vars {
		if !strings.Contains(msg, v) {
			t.Errorf("the error does not name %s: %s", v, msg)
		}
	}
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Errorf("the error shows a secret: %s", msg)
		}
	}
}

// noAWSFiles keeps the AWS SDK away from the shared config files of the
// machine the test runs on.
func noAWSFiles(t *testing.T) {
	d := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(d, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(d, "credentials"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// A wrong secret, an unknown access key id (versitygw answers 404 for it)
// and a missing bucket each get a message that says what it may mean and
// which variables to check, and name the remote once.
func TestRemoteRefusalsS3(t *testing.T) {
	ctx := context.Background()
	srv := emulators.S3(t)
	bucket := srv.NewBucket(t)
	noAWSFiles(t)
	t.Setenv("AWS_REGION", srv.Region)
	awsVars := []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"}
	url := "s3://" + bucket + "/team"
	rc := config.Remote{URL: url, Endpoint: srv.Endpoint, PathStyle: true}

	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	if err := CheckRemote(ctx, rc); err != nil {
		t.Fatalf("with the right keys: %v", err)
	}

	wrong := "wrong-secret-0123456789"
	t.Setenv("AWS_SECRET_ACCESS_KEY", wrong)
	checkRefusal(t, CheckRemote(ctx, rc), url, "refused: check the credentials (", awsVars, wrong, srv.SecretKey)

	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDUNKNOWN0123456789")
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	checkRefusal(t, CheckRemote(ctx, rc), url, "no such bucket, or credentials it does not accept", awsVars, srv.SecretKey)

	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	missing := config.Remote{URL: "s3://no-such-bucket-here/team", Endpoint: srv.Endpoint, PathStyle: true}
	checkRefusal(t, CheckRemote(ctx, missing), missing.URL, "no such bucket", awsVars, srv.SecretKey)

	// A bucket name S3 would refuse is named before any request.
	err := CheckRemote(ctx, config.Remote{URL: "s3://Bad_Bucket!/x"})
	if err == nil || !strings.Contains(err.Error(), `bucket name "Bad_Bucket!"`) {
		t.Fatalf("CheckRemote of a bad bucket name: %v", err)
	}
}

// A refusal by GCS (403, 401) names Application Default Credentials.
func TestRemoteRefusalsGCS(t *testing.T) {
	for _, code := range []int{http.StatusForbidden, http.StatusUnauthorized} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			w.Write([]byte(`{"error": {"code": ` + strconv.Itoa(code) + `, "message": "denied", "errors": [{"reason": "forbidden", "message": "denied"}]}}`))
		}))
		t.Cleanup(srv.Close)
		url := "gs://some-bucket/team"
		err := CheckRemote(context.Background(), config.Remote{URL: url, Endpoint: srv.URL})
		checkRefusal(t, err, url, "refused: check the credentials (", []string{"GOOGLE_APPLICATION_CREDENTIALS"})
	}

	gcs := emulators.GCS(t)
	t.Setenv("STORAGE_EMULATOR_HOST", gcs.Host)
	url := "gs://no-such-bucket-here/team"
	checkRefusal(t, CheckRemote(context.Background(), config.Remote{URL: url}), url,
		"no such bucket, or credentials it does not accept", []string{"GOOGLE_APPLICATION_CREDENTIALS"})
}

// A wrong Azure key, and a missing container, name AZURE_STORAGE_*.
func TestRemoteRefusalsAzure(t *testing.T) {
	ctx := context.Background()
	srv := emulators.Azure(t)
	c := srv.NewContainer(t)
	t.Setenv("AZURE_STORAGE_ACCOUNT", "")
	t.Setenv("AZURE_STORAGE_KEY", "")
	azVars := []string{"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY"}
	url := "az://" + c + "/team"

	wrongKey := "d3Jvbmcta2V5LWZvci10ZXN0cy1vbmx5LXdyb25nLWtleQ=="
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", strings.Replace(srv.ConnectionString, emulators.AzureKey, wrongKey, 1))
	checkRefusal(t, CheckRemote(ctx, config.Remote{URL: url}), url, "refused: check the credentials (", azVars, wrongKey, emulators.AzureKey)

	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", srv.ConnectionString)
	if err := CheckRemote(ctx, config.Remote{URL: url}); err != nil {
		t.Fatalf("with the right key: %v", err)
	}
	missing := "az://no-such-container/team"
	checkRefusal(t, CheckRemote(ctx, config.Remote{URL: missing}), missing,
		"no such container, or credentials it does not accept", azVars, emulators.AzureKey)
}

// A folder remote that is not there names its folder once.
func TestRemoteMissingFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	err := CheckRemote(context.Background(), config.Remote{URL: "file://" + dir})
	if err == nil || strings.Count(err.Error(), dir) != 2 || !strings.HasPrefix(err.Error(), "file://"+dir+": no folder "+dir) {
		t.Fatalf("CheckRemote of a missing folder: %v", err)
	}
}
