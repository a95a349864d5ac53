// Package fault is a cas.Store that fails on purpose, for tests: it wraps
// a working store and, following a Plan, makes chosen calls fail, slow
// down, or return damaged bytes. Retry logic, error paths and the promise
// of "an error, never a wrong byte" can then be proven against cas/mem in
// milliseconds instead of hoped for against a flaky network.
//
// # Damage follows the cas contract
//
// A Corrupt or Truncate rule damages what the inner store returned. For
// GetRange, whose bytes are not verified, the damaged bytes are returned
// as they are: that is what a backend with a broken transfer check would
// hand out. For Get, the damaged bytes are verified against the id like a
// conforming backend would, so the call fails with cas.ErrCorrupt (the
// shape a garbled transfer takes in a real Get). An empty result cannot be
// damaged and is returned untouched.
//
// # Determinism
//
// Every probabilistic rule draws from one generator seeded with
// Plan.Seed, in rule order, once per matching call; calls made from one
// goroutine therefore meet the same faults on every run. Concurrent calls
// meet the same number of faults but in an order the scheduler picks.
package fault
