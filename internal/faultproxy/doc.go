// Package faultproxy is an HTTP reverse proxy for tests that breaks
// requests on their way to an object-store server: it answers 503 instead
// of forwarding, resets connections, stalls answers, and cuts bodies
// short. Put in front of an in-process S3 or GCS emulator it makes the
// real SDKs meet the failures of a real network, so that a backend, its
// error classifier and cas/retry are proven together rather than against
// mocks of the SDK.
//
// # Faults
//
//   - Error answers at once with Plan.ErrorResponse (by default S3's 503
//     SlowDown) and never forwards the request.
//   - Reset forwards the request, lets the server carry it out, and then
//     closes the client's connection with a TCP reset instead of
//     answering: the answer is lost, as when a connection drops after the
//     server committed a write.
//   - Stall forwards the request and holds the answer for Plan.StallFor,
//     or until the client goes away, which is what a client's per-attempt
//     timeout should make it do.
//   - Truncate forwards the request and sends the answer's headers, with
//     the full Content-Length, and the first half of its body, then closes
//     the connection. Bodies shorter than two bytes are sent whole.
//   - Cut reads the first half of the request's body and then resets the
//     connection without forwarding anything: an upload cut off in the
//     middle, which the server never sees (unlike Reset, where the server
//     carried the request out). A request without a body is cut at once.
//
// # Control
//
// Each request meets at most one fault, drawn from the Plan's
// probabilities with a generator seeded by Plan.Seed, or picked by
// Plan.Rule. SetPlan and SetEnabled change the faults while requests flow,
// and Stats counts what was injected.
package faultproxy
