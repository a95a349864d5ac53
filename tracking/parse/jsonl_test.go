package parse

import "testing"

func TestJSONL(t *testing.T) {
	runCases(t, JSONL, []parseCase{
		{"step", `{"step": 3, "loss": 0.25, "acc": 0.91}` + "\n", []string{"loss@3=0.25 t0", "acc@3=0.91 t0"}},
		{"step after the metrics", `{"loss": 0.25, "step": 3}` + "\n", []string{"loss@3=0.25 t0"}},
		{"implicit steps", "{\"loss\": 1}\n{\"loss\": 2}\n{\"step\": 10}\n{\"loss\": 3}\n", []string{"loss@0=1 t0", "loss@1=2 t0", "loss@11=3 t0"}},
		{"epoch and no step", "{\"epoch\": 2, \"loss\": 1}\n{\"loss\": 2}\n", []string{"loss@2=1 t0", "loss@3=2 t0"}},
		{"step wins over epoch", `{"epoch": 2, "step": 100, "loss": 1}` + "\n", []string{"loss@100=1 t0"}},
		{"timestamp", `{"step": 1, "loss": 1, "timestamp": 1733300000.25}` + "\n", []string{"loss@1=1 t1733300000250"}},
		{"nested", `{"train": {"loss": 1, "x": {"y": 2}}, "val": {}, "step": 4}` + "\n", []string{"train/loss@4=1 t0", "train/x/y@4=2 t0"}},
		{"nested reserved names are metrics", `{"train": {"step": 1}}` + "\n", []string{"train/step@0=1 t0"}},
		{"nan and inf", `{"a": "nan", "b": "-Inf", "c": NaN, "d": Infinity, "e": -Infinity, "f": "INFINITY"}` + "\n", []string{
			"a@0=NaN t0", "b@0=-Inf t0", "c@0=NaN t0", "d@0=+Inf t0", "e@0=-Inf t0", "f@0=+Inf t0"}},
		{"escaped key", `{"tr\u0061in\/loss": 1}` + "\n", []string{"train/loss@0=1 t0"}},
		{"white space", " \t{ \"a\" : 1 , \"b\" :2 } \r\n", []string{"a@0=1 t0", "b@0=2 t0"}},
		{"values that are not numbers", `{"loss": 1, "phase": "train", "ok": true, "none": null, "xs": [1, 2], "acc": 2}` + "\n", []string{
			`! line 1: key "phase": "train" is not a number`,
			`! line 1: key "ok": true is not a number`,
			`! line 1: key "none": null is not a number`,
			`! line 1: key "xs": array is not a number`,
			"loss@0=1 t0", "acc@0=2 t0"}},
		{"bad keys", `{"a..b": 1, "/x": 2, "ok": 3, "": 4, "y!": 5}` + "\n", []string{
			`! line 1: key "a..b": must not contain ".."`,
			`! line 1: key "/x": must not start with "/"`,
			`! line 1: key is empty`,
			`! line 1: key "y!": must not contain '!'`,
			"ok@0=3 t0"}},
		{"nested bad key", `{"a": {"": 1}}` + "\n", []string{`! line 1: key "a/": must not end with "/"`}},
		{"bad lines in the middle", "{\"loss\": 1}\n[1, 2]\n42\n{\"loss\": }\n{\"loss\": 1} x\n{\"loss\": 1\n{\"loss\": 2}\n", []string{
			"loss@0=1 t0",
			"! line 2: not a JSON object",
			"! line 3: not a JSON object",
			"! line 4: invalid JSON at byte 10: unexpected '}'",
			"! line 5: invalid JSON at byte 13: data after the object",
			"! line 6: invalid JSON: unexpected end",
			"loss@1=2 t0"}},
		{"bad steps", "{\"step\": 1.5, \"loss\": 1}\n{\"step\": \"3\"}\n{\"epoch\": null}\n{\"step\": 1e3}\n{\"step\": 99999999999999999999}\n{\"loss\": 1}\n", []string{
			"! line 1: step 1.5: not an integer",
			`! line 2: step "3": not an integer`,
			"! line 3: epoch null: not an integer",
			"! line 5: step 99999999999999999999: out of range",
			"loss@1001=1 t0"}},
		{"integral float steps", "{\"step\": 3.0, \"loss\": 1}\n{\"epoch\": 2e0, \"loss\": 2}\n", []string{"loss@3=1 t0", "loss@2=2 t0"}},
		{"bad timestamps", "{\"timestamp\": \"2024-01-01\", \"loss\": 1}\n{\"timestamp\": -1, \"loss\": 2}\n", []string{
			`! line 1: timestamp "2024-01-01": not a number`, "loss@0=1 t0",
			"! line 2: timestamp -1: negative", "loss@1=2 t0"}},
		{"out of range value", `{"a": 1e400, "b": 1}` + "\n", []string{`! line 1: key "a": 1e400 is out of range`, "b@0=1 t0"}},
		{"bad escapes", "{\"a\\x\": 1}\n{\"a\": \"\\u12\"}\n{\"a\u0001\": 1}\n", []string{
			"! line 1: invalid JSON at byte 4: bad escape in string",
			"! line 2: invalid JSON at byte 12: bad \\u escape",
			"! line 3: invalid JSON at byte 4: control character in string"}},
		{"too deep", "{\"a\":" + repeat("{\"a\":", 70) + "1" + repeat("}", 71) + "\n", []string{
			"! line 1: invalid JSON at byte 321: nested too deeply"}},
		{"blank lines and crlf", "\r\n  \n{\"a\": 1}\r\n", []string{"a@0=1 t0"}},
	})
}

func TestJSONLErrorCap(t *testing.T) {
	line := "{"
	for i := 0; i < 15; i++ {
		if i > 0 {
			line += ","
		}
		line += `"k` + string(rune('a'+i)) + `": "x"`
	}
	line += "}\n"
	ev := parseAll(JSONL, "", 0, []byte(line))
	if len(ev) != maxLineErrors+1 || ev[maxLineErrors].String() != "! line 1: 5 more problems in this line" {
		t.Errorf("got %s", show(ev))
	}
}

func repeat(s string, n int) string {
	out := ""
	for i := 0; i < n; i++ {
		out += s
	}
	return out
}
