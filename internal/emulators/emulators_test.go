package emulators

import (
	"context"
	"net"
	"strings"
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
