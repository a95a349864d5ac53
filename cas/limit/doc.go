// Package limit is a cas.Store that lets at most n requests reach the
// store it wraps at once.
//
// Object stores throttle (S3 answers 503 SlowDown, GCS 429) and a client
// machine runs out of sockets and memory long before an upload of a large
// folder runs out of chunks to send; past a few dozen concurrent requests
// more parallelism only adds retries. A semaphore in front of the backend
// keeps the callers' concurrency whatever it is and the store's bounded.
// Waiting for a slot honours the caller's context.
//
// # Lists hold a slot
//
// List and ListRefs hold their slot for their whole duration, callbacks
// included, since the inner listing is in flight all along. A callback
// that calls the same limited store therefore needs a second slot: with n
// = 1 it would wait forever. Collect what the callback needs and make the
// calls after the listing returns, or give the store room.
//
// # Stacking
//
// Put limit below cas/retry, so that a request waiting out a backoff does
// not hold a slot that another could use.
package limit
