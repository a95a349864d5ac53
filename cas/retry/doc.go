// Package retry is a cas.Store that retries the inner store's transient
// failures, so that a dropped connection or a throttled request costs a
// moment rather than a failed upload.
//
// # One layer owns retrying
//
// The cloud SDKs retry on their own, each with its own rules and budget.
// Stacked under this package their retries multiply (six attempts of six
// attempts is thirty-six requests, with the SDK's backoff hidden inside
// one of ours), and the SDK cannot know mlfs's rules: that a lost
// CreateRef answer is a success, that a Get whose bytes fail verification
// deserves a second read. So cas/s3 and cas/gcs turn their SDK's retries
// off in the clients they build, and this wrapper does all of it, the same
// way for every backend.
//
// # What is retried
//
// Only errors that Options.Transient calls transient: each backend exports
// its classifier (s3.Transient, gcs.Transient), because only the backend
// knows what a throttle or a reset looks like in its SDK. An attempt that
// runs past Options.AttemptTimeout is canceled and counts as transient,
// which is what cuts a stalled connection. The caller's own context is
// never retried past: once it is done, the call returns at once.
//
// The sentinel errors are answers, not failures, and are never retried
// whatever the classifier says, with two exceptions:
//
//   - A Get (or GetRef) that fails with cas.ErrCorrupt is read again, up to
//     twice: a truncated or garbled transfer looks exactly like corruption
//     to the verifying reader, and a second read fixes it. Corruption at
//     rest still ends in cas.ErrCorrupt.
//   - A CreateRef that fails with cas.ErrExists on any attempt but the
//     first may have lost to itself: an earlier attempt created the ref and
//     its answer was lost. The ref is read back, and if it points at the
//     caller's id CreateRef succeeds. (A competitor that created the same
//     name with the same id is indistinguishable, and harmless: the ref
//     means the same either way.)
//
// # Lists
//
// List and ListRefs are retried only until their callback has run once:
// after that a retry would call it again for the entries already seen,
// which cas.Lister does not allow. For them AttemptTimeout bounds the wait
// for the next entry, not the whole listing, and the time the callback
// itself takes is not counted.
//
// # Backoff
//
// The delay before attempt n+1 is drawn uniformly from [0, min(MaxDelay,
// BaseDelay·2^(n-1))] ("full jitter"), so that many clients failing
// together do not come back together.
//
// # Stacking
//
// Wrap the backend itself, below caches and packers, so that each request
// they make is retried on its own. A cas/metrics wrapper inside retry
// counts attempts, one outside it counts calls.
package retry
