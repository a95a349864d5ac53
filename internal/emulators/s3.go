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

// newS3Server has fresh root keys, so that a test can check they never
// leak, and no endpoint yet.
func newS3Server() S3Server {
	return S3Server{AccessKey: "mlfs" + RandomName()[5:], SecretKey: "secret-" + RandomName()[5:], Region: "us-east-1"}
}

// s3Spec runs versitygw with s's keys as its root account's.
func s3Spec(bin string, s S3Server) spec {
	return spec{
		name: "versitygw",
		bin:  bin,
		args: func(port int, dir string) []string {
			return []string{"--port", "127.0.0.1:" + strconv.Itoa(port), "--region", s.Region, "--quiet", "posix", dir}
		},
		env:   []string{"ROOT_ACCESS_KEY=" + s.AccessKey, "ROOT_SECRET_KEY=" + s.SecretKey},
		probe: "/",
	}
}

func s3Endpoint(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

// S3 starts versitygw for the test; see the package documentation.
func S3(t testing.TB) S3Server {
	t.Helper()
	bin := find(t, "versitygw", "bin/versitygw")
	s := newS3Server()
	s.Endpoint = s3Endpoint(start(t, s3Spec(bin, s)))
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

// CreateBucket creates a bucket.
func (s S3Server) CreateBucket(ctx context.Context, name string) error {
	_, err := s.Client().CreateBucket(ctx, &s3sdk.CreateBucketInput{Bucket: aws.String(name)})
	return err
}

// NewBucket creates a bucket with a random name and returns the name.
func (s S3Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := RandomName()
	if err := s.CreateBucket(context.Background(), name); err != nil {
		t.Fatalf("versitygw: create bucket %s: %v", name, err)
	}
	return name
}

// Env is what the AWS SDK reads to sign for the server: its keys and
// region. The endpoint is not among them; clients name it.
func (s S3Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "AWS_REGION=" + s.Region}
}
