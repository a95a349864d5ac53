package parse

import "testing"

func TestCSV(t *testing.T) {
	runCases(t, CSV, []parseCase{
		{"keras", "epoch,loss,accuracy,val_loss\n0,0.5,0.8,0.6\n1,0.4,0.85,0.55\n", []string{
			"loss@0=0.5 t0", "accuracy@0=0.8 t0", "val_loss@0=0.6 t0",
			"loss@1=0.4 t0", "accuracy@1=0.85 t0", "val_loss@1=0.55 t0"}},
		{"lightning with empty cells", "epoch,step,train_loss,val_acc\n0,49,0.5,\n0,49,,0.8\n1,99,0.4,\n", []string{
			"train_loss@49=0.5 t0", "val_acc@49=0.8 t0", "train_loss@99=0.4 t0"}},
		{"step column not first", "train_loss,step\n1,7\n2,\n", []string{"train_loss@7=1 t0", "train_loss@8=2 t0"}},
		{"empty step cell falls back to epoch", "epoch,step,a\n3,,1\n", []string{"a@3=1 t0"}},
		{"no step column", "a,b\n1,2\n3,4\n", []string{"a@0=1 t0", "b@0=2 t0", "a@1=3 t0", "b@1=4 t0"}},
		{"time columns", "step,timestamp,a\n1,1733300000.25,1\n2,,2\n", []string{"a@1=1 t1733300000250", "a@2=2 t0"}},
		{"time when no timestamp", "step,time,a\n1,1733300000,1\n", []string{"a@1=1 t1733300000000"}},
		{"timestamp wins over time", "step,time,timestamp,a\n1,5,1733300000,1\n", []string{"a@1=1 t1733300000000"}},
		{"quoted header and cells", "\"epoch\",\"val acc\",\"a,b\",\"q\"\"x\"\n\"1\",\" 0.5 \",2,3\n", []string{
			`! line 1: header: column 3: key "a,b": must not contain ','`,
			`! line 1: header: column 4: key "q\"x": must not contain '"'`,
			"val acc@1=0.5 t0"}},
		{"quoting errors", "a,b\n\"1,2\n\"1\"x,2\n3,4\n", []string{
			"! line 2: column 1: unterminated quoted cell",
			"! line 3: column 1: text after a closing quote",
			"a@0=3 t0", "b@0=4 t0"}},
		{"bad cells", "step,val_acc,loss\n1,x,0.5\n2,nan,inf\n", []string{
			`! line 2: column "val_acc": "x" is not a number`, "loss@1=0.5 t0",
			"val_acc@2=NaN t0", "loss@2=+Inf t0"}},
		{"bad step and time", "step,timestamp,a\n1.5,1,1\nx,1,1\n1,-3,1\n", []string{
			`! line 2: column "step": "1.5" is not an integer`,
			`! line 3: column "step": "x" is not an integer`,
			`! line 4: column "timestamp": "-3" is negative`, "a@1=1 t0"}},
		{"row lengths", "a,b\n1,2,3\n4\n,\n5,6\n", []string{
			"! line 2: row has 3 cells; the header has 2",
			"a@0=4 t0", "a@2=5 t0", "b@2=6 t0"}},
		{"header problems", "step,a,a,,b..c,epoch\n1,2,3,4,5,6\n", []string{
			`! line 1: header: column "a": given twice`,
			"! line 1: header: column 4: key is empty",
			`! line 1: header: column 5: key "b..c": must not contain ".."`,
			"a@1=2 t0"}},
		{"blank lines and crlf", "\n  \r\nstep,a\r\n\r\n1,2\r\n", []string{"a@1=2 t0"}},
		{"byte order mark", "\xef\xbb\xbfstep,a\n1,2\n", []string{"a@1=2 t0"}},
		{"header quoting error", "\"a\n1\n", []string{
			"! line 1: header: column 1: unterminated quoted cell",
			"! line 2: row has 1 cells; the header has 0"}},
		{"spaces around cells", "step , a\n 1 , 2 \n", []string{"a@1=2 t0"}},
	})
}

func TestCSVErrorCap(t *testing.T) {
	header, row := "", ""
	for i := 0; i < 15; i++ {
		if i > 0 {
			header += ","
			row += ","
		}
		header += "c" + string(rune('a'+i))
		row += "x"
	}
	ev := parseAll(CSV, "", 0, []byte("a!,b!,c!,d!,e!,f!,g!,h!,i!,j!,k!,l!\n"))
	if len(ev) != maxLineErrors+1 || ev[maxLineErrors].String() != "! line 1: 2 more problems in this line" {
		t.Errorf("header: got %s", show(ev))
	}
	ev = parseAll(CSV, "", 0, []byte(header+"\n"+row+"\n"))
	if len(ev) != maxLineErrors+1 || ev[maxLineErrors].String() != "! line 2: 5 more problems in this line" {
		t.Errorf("row: got %s", show(ev))
	}
}
