// Package gcs is a cas.Store in a Google Cloud Storage bucket, written
// against cloud.google.com/go/storage.
//
// # Layout
//
// Everything lives under an optional object-name prefix inside one bucket,
// exactly as in cas/s3 and cas/local:
//
//	<prefix>/objects/ab/abcd…   one GCS object per cas object, named by the
//	                            64-hex id and fanned out by its first two
//	                            hex digits
//	<prefix>/refs/<name>        a ref: the hex id and a newline; the "/" in a
//	                            ref name is just part of the object name
//
// The fan-out costs nothing in GCS and keeps the layout identical to the
// other backends, so a store can be copied between them with a plain sync
// tool (gcloud storage rsync, rclone) and still be read by any of them.
//
// # Durability
//
// A GCS write is durable once Writer.Close returns, and GCS is strongly
// consistent: the object is at once visible to every reader and to
// listings. Put only returns after Close has, so every object Put before a
// CreateRef is durable before the ref exists, as cas.Refs requires, with no
// buffering here; Close has nothing to flush.
//
// # Why refs use the DoesNotExist condition
//
// A ref is what makes a version name such as "iris/v1" atomic and unique:
// among concurrent creators exactly one must win. Reading the attributes
// and then writing cannot give that — two writers can both see "absent" and
// both write, the later silently replacing the earlier. So CreateRef writes
// through
//
//	obj.If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
//
// which sends ifGenerationMatch=0. GCS evaluates that precondition
// atomically when it commits the upload: the first write of the name
// succeeds and every other fails with HTTP 412 (reason conditionNotMet),
// reported by Writer.Close and turned into cas.ErrExists here. The
// package's tests race sixteen creators against one name to check it.
//
// The condition also makes the write safe to retry. One corner remains: if
// a write succeeded but its response was lost, the retry sees the object
// and CreateRef reports ErrExists although this caller won. The ref then
// points at the caller's own id, which GetRef shows; cas/retry does that
// check and reports success.
//
// Put uses the same condition for a different reason: two Puts of one id
// write the same bytes, so losing the race is success, and a conditional
// write is one that may safely be retried.
//
// # Retries and short bodies
//
// The client Open builds makes one attempt per request
// (storage.RetryNever): mlfs wraps stores in cas/retry, with Transient as
// the classifier, and two retrying layers would multiply each other's
// attempts. A caller that uses the bare Store sets Options.SDKRetries to
// get the SDK's retries back; a client passed as Options.Client keeps its
// own settings. (Even without retries, the SDK's reader resumes a download
// that breaks off mid-body with a ranged read of the rest.)
//
// A body cut short is an error wrapping io.ErrUnexpectedEOF, which
// Transient accepts: reads compare the bytes with the Content-Length, and
// GetRange also with the range clamped to the object size that GCS names,
// so that a truncated transfer can never pass for the end of the object.
package gcs
