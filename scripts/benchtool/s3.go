package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/mlfs/mlfs/cas"
)

// s3Get is the baseline of a cold read from an S3 remote: a plain program
// that downloads every object under PREFIX/objects/ in BUCKET (the pack
// files) with ranged GETs of rangeSize bytes, parallel of them at a time,
// and throws the bytes away. It signs with AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY and prints "RESULT <seconds> <bytes> <requests>"
// on stderr; the time includes the listing.
//
// With keep, a file, it also does what the SPEC makes mlfs do with what it
// fetches, without a filesystem in between: every 64 KiB (mlfs's average
// chunk) is hashed with BLAKE3 and written to keep, as a cache would. That
// is the floor of a verifying, caching reader on the same machine.
func s3Get(endpoint, bucket, prefix string, parallel int, rangeSize int64, keep string) error {
	ctx := context.Background()
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = "us-east-1"
	}
	client := s3sdk.New(s3sdk.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
	})
	if prefix != "" {
		prefix += "/"
	}
	start := time.Now()
	type part struct {
		key      string
		off, len int64
	}
	var parts []part
	p := s3sdk.NewListObjectsV2Paginator(client, &s3sdk.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String(prefix + "objects/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/%sobjects/: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			size := aws.ToInt64(o.Size)
			for off := int64(0); off < size; off += rangeSize {
				parts = append(parts, part{aws.ToString(o.Key), off, min(rangeSize, size-off)})
			}
		}
	}
	if len(parts) == 0 {
		return fmt.Errorf("no objects under s3://%s/%sobjects/", bucket, prefix)
	}
	var total atomic.Int64
	bufs := sync.Pool{New: func() any { return make([]byte, 1<<20) }}
	var out *os.File
	var written atomic.Int64
	if keep != "" {
		f, err := os.Create(keep)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, pt := range parts {
		g.Go(func() error {
			rng := "bytes=" + strconv.FormatInt(pt.off, 10) + "-" + strconv.FormatInt(pt.off+pt.len-1, 10)
			res, err := client.GetObject(gctx, &s3sdk.GetObjectInput{Bucket: &bucket, Key: &pt.key, Range: &rng})
			if err != nil {
				return fmt.Errorf("get %s %s: %w", pt.key, rng, err)
			}
			defer res.Body.Close()
			if out != nil {
				return keepRange(res.Body, pt.len, out, &written, &total)
			}
			buf := bufs.Get().([]byte)
			defer bufs.Put(buf)
			n, err := drain(res.Body, buf)
			if err == nil && n != pt.len {
				err = errors.New("short body")
			}
			if err != nil {
				return fmt.Errorf("get %s %s: read %d of %d bytes: %w", pt.key, rng, n, pt.len, err)
			}
			total.Add(n)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "RESULT %.3f %d %d\n", el.Seconds(), total.Load(), len(parts))
	return nil
}

// keepRange reads n bytes from body, hashes every 64 KiB of them and
// appends them to out (at offsets taken from written), counting them in
// total.
func keepRange(body io.Reader, n int64, out *os.File, written, total *atomic.Int64) error {
	b := make([]byte, n)
	if _, err := io.ReadFull(body, b); err != nil {
		return err
	}
	for off := int64(0); off < n; off += 64 << 10 {
		cas.Sum(b[off:min(n, off+64<<10)])
	}
	if _, err := out.WriteAt(b, written.Add(n)-n); err != nil {
		return err
	}
	total.Add(n)
	return nil
}

// drain reads r to its end through buf and returns the bytes read.
func drain(r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
