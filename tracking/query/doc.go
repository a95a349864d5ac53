// Package query parses and evaluates the run search filters and sort
// orders of `mlfs runs`:
//
//	mlfs runs --filter "metrics.accuracy > 0.9 and params.model = 'svm'" --sort "metrics.accuracy desc"
//
// The syntax is the one of MLflow's search_runs, which the people who use
// mlfs already type, with a few extensions noted below. Keywords and field
// prefixes are case-insensitive; keys and strings are not, nor attribute
// names unless Parser.Attrs lists them.
//
// # Filters
//
//	filter := clause { AND clause }
//	clause := field op value
//	op     := = | == | != | <> | < | <= | > | >=
//	        | LIKE | ILIKE | NOT LIKE | NOT ILIKE | IN | NOT IN
//	        | IS NULL | IS NOT NULL
//
// There is no OR and there are no parentheses around clauses: run two
// searches instead.
//
// A field is metrics.<key>, params.<key>, tags.<key> (also metric., param.,
// tag.) or an attribute: attributes.<name> (also attribute., attr., run.)
// or a bare name such as status or start_time. An unquoted key is a run of
// letters, digits and _ - . /; other keys are quoted with backticks or
// double quotes: metrics.`train loss`, params."a b". Which attribute names
// exist is the caller's business: see Parser.Attrs.
//
// A value is a number (digits, optional sign, fraction and exponent; no
// NaN or Inf), a string in single or double quotes, or for IN and NOT IN a
// parenthesized, comma-separated list of them. In strings and quoted keys
// a backslash takes the next character literally and a doubled quote
// character stands for one; there are no escapes such as \n.
//
// LIKE patterns use % for any run of characters and _ for exactly one;
// LIKE is case-sensitive and ILIKE is not (simple Unicode case folding).
// As in MLflow there is no escape character, so a pattern cannot require a
// literal % or _ (use _ to accept any character there, or = to compare
// exactly).
//
// # Evaluation
//
// A run without the field fails every clause except IS NULL. For a run
// that has it, every NOT form is the negation of its positive form, and
// != of =. IN is true when = holds for some element of the list.
//
// Metrics are numbers and compare with number literals only; anything
// else is a parse error, LIKE included. NaN compares false with
// everything: only != and NOT IN hold for it.
//
// Params and tags are strings:
//   - = and != against a quoted string compare the strings exactly.
//   - = and != against a number literal compare numerically when the
//     stored string parses as a number (strconv.ParseFloat, so "1e-2"
//     equals 0.01), else compare the strings, the literal as written.
//   - <, <=, > and >= compare numerically when both the stored string and
//     the literal (quoted or not) parse as numbers, else byte-wise. This
//     is an extension: MLflow has no order comparisons on params and tags.
//
// So params.lr = 0.01 matches "0.010" while params.lr = '0.01' does not.
//
// Attributes are numbers or strings as the Record reports them; strings
// follow the rules of params. A number compares with a number literal,
// with a quoted string that parses as a number, or with a quoted date,
// which is taken as unix milliseconds: "2026-12-01", "2026-12-01 10:00",
// "2026-12-01T10:00:00" (in Parser.Location, UTC by default) or RFC 3339
// with an offset, "2026-12-01T10:00:00Z". A number never matches LIKE,
// nor equals or orders against a string that is neither a number nor a
// date (so != and NOT LIKE hold).
//
// # Sort orders
//
//	order := field [ASC | DESC] { , field [ASC | DESC] }
//
// ASC is the default. Runs without the field sort last in both directions,
// after NaN, which sorts after all other values; see Sort.
//
// # Performance
//
// Patterns, numbers and dates are converted once at parse time, and
// matching allocates nothing. Numbers stored as param or tag strings are
// parsed on each comparison that needs them. Sort looks up each key at
// most once per record.
package query
