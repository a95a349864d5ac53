// Package s3 is a cas.Store in an Amazon S3 bucket (or any S3-compatible
// service that honours conditional writes), written against
// github.com/aws/aws-sdk-go-v2.
//
// # Layout
//
// Everything lives under an optional key prefix inside one bucket:
//
//	<prefix>/objects/ab/abcd…   one S3 object per cas object, keyed by the
//	                            64-hex id and fanned out by its first two
//	                            hex digits
//	<prefix>/refs/<name>        a ref: the hex id and a newline; the "/" in a
//	                            ref name is just part of the key
//
// The fan-out costs nothing in S3 and keeps the layout identical to
// cas/local, so a store can be copied between the two with a plain sync
// tool (aws s3 sync, rclone) and still be read by either backend.
//
// # Durability
//
// A successful PutObject is durable and, since S3 became strongly
// consistent in 2020, immediately visible to every reader and to listings.
// Put only returns once PutObject has, so every object Put before a
// CreateRef is durable before the ref exists, as cas.Refs requires, without
// any buffering or flushing here; Close has nothing to flush.
//
// # Why refs use a conditional create
//
// A ref is what makes a version name such as "iris/v1" atomic and unique:
// among concurrent creators exactly one must win. A HeadObject followed by a
// PutObject cannot give that — two writers can both see "absent" and both
// write, the later silently replacing the earlier. So CreateRef issues a
// single PutObject with "If-None-Match: *", which S3 evaluates atomically on
// the server: the first write of the key succeeds and every other gets 412
// PreconditionFailed (or 409 ConditionalRequestConflict while a competing
// conditional write of the same key is still in flight), both of which are
// reported as cas.ErrExists. This needs a service that supports conditional
// writes (AWS S3 since August 2024, and most compatible servers); one that
// ignores the header would let two creators both win, which is why the
// package's tests race sixteen creators against one name.
//
// One corner remains: if a conditional PutObject succeeds but its answer is
// lost, a retry sees the key and CreateRef reports ErrExists although this
// caller won; the ref then points at the caller's own id, which GetRef
// shows. cas/retry does exactly that check, which is one reason it, and
// not the SDK, retries (next section).
//
// # Retries and short bodies
//
// The client Open builds makes one attempt per request (aws.NopRetryer):
// mlfs wraps stores in cas/retry, with Transient as the classifier, and
// two retrying layers would multiply each other's attempts. A caller that
// uses the bare Store sets Options.SDKRetries to get the SDK's standard
// retryer back; a client passed as Options.Client keeps whatever retryer
// it was built with.
//
// A body cut short is an error wrapping io.ErrUnexpectedEOF, which
// Transient accepts: Get compares the bytes with Content-Length (and
// verifies them), and GetRange also checks them against the Content-Range
// S3 sent and the object size it names, so that a truncated transfer can
// never pass for the end of the object.
package s3
