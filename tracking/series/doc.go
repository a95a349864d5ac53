// Package series holds one metric series of a run: its points, stored in
// blocks, and a State (a Summary for listings and a Downsample for plots)
// that is kept up to date as points arrive, so that neither listing nor
// plotting reads the blocks.
//
// # Blocks and their numbers
//
// Points are numbered from 0 in the order they were added, and point i is
// in block i/BlockSize (BlockNumber). Every block therefore holds exactly
// BlockSize points except the last, which holds 1 to BlockSize, and a
// caller can compute any point's block key from counts alone.
//
// Series implements the write side. Every second or so the caller takes
// a Checkpoint and writes it in one atomic batch with whatever else must
// agree with it (the parsers' positions): each block it lists under its
// number, overwriting — the partial last block is rewritten under the
// same number until it fills — and the point count Len; then it calls
// Committed. The State encoding may go in every checkpoint or only in
// some, since it is some 60 KB for a long series. To resume after a
// restart, Restore takes the stored State and count, reads back the
// blocks written since that State (at least the partial last block, so
// that appending continues in it) and gives exactly the series that
// never stopped; with no State it rebuilds one from all the blocks.
//
// # Encodings
//
// All integers are varints as in encoding/binary: "uvarint" is unsigned
// LEB128, and "varint" is the uvarint of the zig-zag mapping
// (v<<1)^(v>>63). Decoders accept only minimal varints (no final 0x00
// byte after the first, at most 10 bytes, the 10th at most 1). Deltas are
// computed with wrapping 64-bit arithmetic: x[i]-x[i-1] may overflow, and
// the decoder's wrapping sum gives x[i] back exactly. Floats are their
// IEEE 754 bits, so NaN payloads, ±Inf and -0 survive bit for bit.
//
// A value coded "xor" against a predecessor p is x = bits(v) XOR bits(p),
// written as one header byte h and then some bytes of x. If x == 0, h is 0
// and nothing follows. Otherwise let lz and tz be the numbers of leading
// and trailing zero bytes of x (lz+tz <= 7); h = 1 + 8*lz + tz and the
// 8-lz-tz bytes between them follow, least significant first. The
// decoder requires the first and last of those bytes to be non-zero, so
// there is one encoding per x. Repeated values take 1 byte; values that
// came from float32 take at most 5.
//
// Min and Max that have seen no non-NaN value hold the bits of
// math.NaN(), 0x7FF8000000000001, and no other NaN.
//
// Decoders reject anything else — unknown versions, truncation, trailing
// bytes, counts larger than the input could hold or than BlockSize,
// fields that contradict each other (Min above Max, Last outside them, a
// bucket count that is not the width) — with an error wrapping
// ErrMalformed. They never panic and
// allocate in proportion to their input. Since every encoding is
// canonical, bytes that decode re-encode to themselves.
//
// A block is:
//
//	version   byte, 1
//	n         uvarint, 0..BlockSize
//	steps     n varints: Step[i] - Step[i-1], with Step[-1] = 0
//	times     n varints: Time[i] - Time[i-1], with Time[-1] = 0
//	values    n xor values: Value[i] against Value[i-1], Value[-1] = +0
//
// Steps 0,1,2,... and times 10 ms apart take one byte each per point, so
// a point costs 2 bytes plus its value: 3 for a constant, about 10 for a
// noisy float64, about 7 for one that came from float32.
//
// A Summary is a version byte (1) and a uvarint Count; if Count > 0,
// then Min, Max and Last as 8 little-endian bytes each, LastStep and
// LastTime as varints, and LastTime-FirstTime as a uvarint.
//
// A Downsample is:
//
//	version   byte, 1
//	target    uvarint, 1..MaxTarget
//	shift     byte, 0..62: every bucket but the last holds 1<<shift points
//	n         uvarint, at most 2*target, and more than target if shift > 0
//	last      uvarint, the last bucket's count, if n > 0
//	buckets   n buckets, each coded against the previous one, p (the
//	          zero Bucket for the first)
//
// A bucket with count 1 is FirstStep-p.LastStep and FirstTime-p.LastTime
// as varints and First xor p.Last; its other fields follow. Any other
// bucket is varints FirstStep-p.LastStep and LastStep-FirstStep; uvarints
// min(FirstStep,LastStep)-MinStep and MaxStep-max(FirstStep,LastStep);
// varints FirstTime-p.LastTime and LastTime-FirstTime; then First xor
// p.Last, Last xor First, Min xor p.Min and Max xor p.Max.
//
// A State is a version byte (1), a Summary and a Downsample, which must
// agree on the count and on Min and Max.
//
// # Why the downsample looks like this
//
// A plot of a 10-million-point metric needs about a thousand points, and
// the daemon must keep that summary current at ingest rates without
// rereading anything. Buckets of a fixed number of consecutive points,
// whose width doubles by merging neighbours when there are 2*Target of
// them, give that: Add is O(1) amortized and allocation-free once the
// slice has grown, memory is bounded, and a merged bucket is exactly the
// bucket of its points (min of mins, max of maxes), so nothing is
// approximated. Keeping min and max, not a sample, means spikes (a NaN
// loss, a divergence) always show. Buckets go by arrival order, not step,
// so steps that go backwards (a resumed run) or repeat cost nothing;
// MinStep and MaxStep let a plot place such buckets. Because bucket
// boundaries are multiples of the width, merging them further for a
// requested resolution (Points) in aligned power-of-two groups also
// gives boundaries that stay put as points arrive.
//
// What it cannot do: zoom. A range narrower than a few buckets must be
// drawn from the blocks. Nor does it say anything about time gaps inside
// a bucket beyond FirstTime and LastTime.
//
// The encoded Downsample of a long series is 1025 to 2048 buckets of
// about 40 bytes with noisy values, hence the advice above to write the
// State less often than the blocks.
package series
