// Package metrics is a cas.Store that counts and times the calls to the
// store it wraps, as Prometheus metrics:
//
//	mlfs_store_requests_total{backend,op,result}   calls; result is ok,
//	                                               not_found, exists or error
//	mlfs_store_bytes_total{backend,op}             bytes returned by get and
//	                                               get_range, passed to put
//	mlfs_store_request_seconds{backend,op}         call latency
//
// op is the method in snake case: get, get_range, stat, put, list, delete,
// create_ref, get_ref, list_refs, delete_ref.
//
// # One set of metrics per registry
//
// A registry takes each metric name once, yet one process often has
// several stores worth telling apart (the remote and the local cache, say).
// So the vectors belong to a Collectors value, made once per registry, and
// each wrapped store adds its backend label: NewCollectors(reg).Wrap(s3,
// "s3") and .Wrap(local, "local"). New does both steps and finds the
// vectors an earlier call registered, so it too may be called once per
// store.
//
// # Counting without scraping
//
// Store.Counts returns the calls so far by op from plain atomic counters,
// for tests and benchmarks that want to know how many requests an
// operation cost without parsing an exposition.
//
// # Where it sits
//
// Inside cas/retry the metrics count attempts, each failed attempt an
// error; outside it they count calls as the caller saw them. List and
// ListRefs are timed until they return, callbacks included.
package metrics
