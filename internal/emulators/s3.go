package emulators

import (
	"context"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Server is a running versitygw (S3 over a POSIX folder). It checks
// request signatures, so clients must sign with AccessKey and SecretKey.
type S3Server struct {
	Endpoint  string // "http://127.0.0.1:port"; address buckets path-style
	AccessKey string
	SecretKey string
	Region    string
}

// S3 starts versitygw for the test; see the package documentation.
func S3(t testing.TB) S3Server {
	t.Helper()
	bin := find(t, "versitygw", "bin/versitygw")
	// Fresh keys per server, so that a test can check they never leak.
	s := S3Server{AccessKey: "mlfs" + RandomName()[5:], SecretKey: "secret-" + RandomName()[5:], Region: "us-east-1"}
	port := start(t, spec{
		name: "versitygw",
		bin:  bin,
		args: func(port int, dir string) []string {
			return []string{"--port", "127.0.0.1:" + strconv.Itoa(port), "--region", s.Region, "--quiet", "posix", dir}
		},
		env:   []string{"ROOT_ACCESS_KEY=" + s.AccessKey, "ROOT_SECRET_KEY=" + s.SecretKey},
		probe: "/",
	})
	s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
	return s
}

// Client returns an S3 client for the server, signing with its keys.
func (s S3Server) Client() *s3sdk.Client {
	return s3sdk.New(s3sdk.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// NewBucket creates a bucket with a random name and returns the name.
func (s S3Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := RandomName()
	if _, err := s.Client().CreateBucket(context.Background(), &s3sdk.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("versitygw: create bucket %s: %v", name, err)
	}
	return name
}
