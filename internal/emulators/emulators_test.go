package emulators

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
)

// gone checks that nothing listens at host once the subtest that started
// the emulator there has ended.
func gone(t *testing.T, name, host string) {
	t.Helper()
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still listens at %s after its test ended", name, host)
	}
}

func hostOf(url string) string {
	h := strings.TrimPrefix(url, "http://")
	h, _, _ = strings.Cut(h, "/")
	return h
}

func TestS3(t *testing.T) {
	var host string
	t.Run("run", func(t *testing.T) {
		s := S3(t)
		host = hostOf(s.Endpoint)
		b := s.NewBucket(t)
		if _, err := s.Client().HeadBucket(context.Background(), &s3sdk.HeadBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	})
	if host != "" {
		gone(t, "versitygw", host)
	}
}

func TestGCS(t *testing.T) {
	var host string
	t.Run("run", func(t *testing.T) {
		s := GCS(t)
		host = s.Host
		b := s.NewBucket(t)
		if _, err := s.Client(t).Bucket(b).Attrs(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	if host != "" {
		gone(t, "fake-gcs-server", host)
	}
}

func TestAzure(t *testing.T) {
	var host string
	t.Run("run", func(t *testing.T) {
		s := Azure(t)
		host = hostOf(s.Endpoint)
		c := s.NewContainer(t)
		if _, err := s.Client(t).ServiceClient().NewContainerClient(c).GetProperties(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	})
	if host != "" {
		gone(t, "azurite-blob", host)
	}
}

func TestRandomName(t *testing.T) {
	a, b := RandomName(), RandomName()
	if a == b || len(a) != 21 || strings.Trim(a[5:], "0123456789abcdef") != "" {
		t.Fatalf("RandomName gave %q and %q", a, b)
	}
}

// Start and Stop, as scripts use them: each kind comes up with its data in
// the folder given, makes a bucket its SDK sees, logs to the file named,
// and is gone after Stop.
func TestStartStop(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			find(t, binaries[kind].name, binaries[kind].rel) // skips (or fails) as the others do
			dir := t.TempDir()
			log := filepath.Join(t.TempDir(), "emulator.log")
			s, err := StartOptions(kind, dir, Options{LogFile: log, Detach: true})
			if err != nil {
				t.Fatal(err)
			}
			stopped := false
			defer func() {
				if !stopped {
					s.Stop()
				}
			}()
			if pgid, err := syscall.Getpgid(s.Pid()); err != nil || pgid != s.Pid() {
				t.Fatalf("a detached emulator should lead its own process group: pgid %d (%v), pid %d", pgid, err, s.Pid())
			}
			ctx := context.Background()
			b, err := s.NewBucket(ctx)
			if err != nil {
				t.Fatal(err)
			}
			switch kind {
			case KindS3:
				_, err = s.S3.Client().HeadBucket(ctx, &s3sdk.HeadBucketInput{Bucket: aws.String(b)})
			case KindGCS:
				_, err = s.GCS.Client(t).Bucket(b).Attrs(ctx)
			case KindAzure:
				_, err = s.Azure.Client(t).ServiceClient().NewContainerClient(b).GetProperties(ctx, nil)
			}
			if err != nil {
				t.Fatalf("bucket %s: %v", b, err)
			}
			if len(s.Env()) == 0 || !strings.HasPrefix(s.Endpoint(), "http://127.0.0.1:") {
				t.Fatalf("env %q, endpoint %q", s.Env(), s.Endpoint())
			}
			if _, err := os.Stat(log); err != nil {
				t.Fatalf("no log file: %v", err)
			}
			host := hostOf(s.Endpoint())
			stopped = true
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			gone(t, s.Name, host)
		})
	}
	if _, err := Start("minio", t.TempDir()); err == nil || !strings.Contains(err.Error(), "unknown emulator kind") {
		t.Fatalf("Start of an unknown kind: %v", err)
	}
}
