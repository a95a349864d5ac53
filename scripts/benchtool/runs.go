package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/mlfs/mlfs/daemon"
)

// ingest writes POINTS metric lines ("step value") to PATH through a
// 64 KiB buffered writer, as a training loop's logger does, and prints
// "RESULT <write seconds> <visible seconds> <bytes>": with SOCKET, RUN and
// METRIC, the second figure is how long after the close the daemon's index
// held every point (polled through its socket), else 0.
func ingest(args []string) error {
	path := args[0]
	n := size(args[1])
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	start := time.Now()
	var line []byte
	for i := int64(0); i < n; i++ {
		line = strconv.AppendInt(line[:0], i, 10)
		line = append(line, ' ')
		line = strconv.AppendFloat(line, 1/float64(i+1)+float64(i%7)*1e-3, 'g', 6, 64)
		line = append(line, '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	wrote := time.Since(start)
	fi, _ := os.Stat(path)
	var visible time.Duration
	if len(args) >= 5 {
		c, err := daemon.Dial(args[2])
		if err != nil {
			return err
		}
		defer c.Close()
		t0 := time.Now()
		for {
			d, err := c.Show(context.Background(), args[3])
			if err != nil {
				return err
			}
			if d.Info.Metrics[args[4]].Count >= n {
				break
			}
			if time.Since(t0) > time.Minute {
				return fmt.Errorf("only %d of %d points visible after a minute", d.Info.Metrics[args[4]].Count, n)
			}
			time.Sleep(time.Millisecond)
		}
		visible = time.Since(t0)
	}
	fmt.Fprintf(os.Stderr, "RESULT %.4f %.4f %d\n", wrote.Seconds(), visible.Seconds(), fi.Size())
	return nil
}

// makeRuns starts RUNS runs under RUNSDIR through the mount, each with
// two params, a tag and one metrics.jsonl line of METRICS metrics, eight
// at a time.
func makeRuns(dir, prefix string, runs, metrics int) error {
	jobs := make(chan int)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := makeRun(dir, prefix, i, metrics); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < runs; i++ {
		select {
		case jobs <- i:
		case err := <-errs:
			close(jobs)
			return err
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	return nil
}

func makeRun(dir, prefix string, i, metrics int) error {
	run := filepath.Join(dir, fmt.Sprintf("%s%05d", prefix, i))
	if err := os.Mkdir(run, 0o755); err != nil {
		return err
	}
	lr := []string{"0.1", "0.01", "0.001"}[i%3]
	if err := os.WriteFile(filepath.Join(run, "params", "lr"), []byte(lr), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(run, "params", "layers"), []byte(strconv.Itoa(2+i%5)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(run, "tags", "experiment"), []byte(fmt.Sprintf("exp%d", i%10)), 0o644); err != nil {
		return err
	}
	m := map[string]any{"step": 100}
	for k := 0; k < metrics; k++ {
		m[fmt.Sprintf("m%02d", k)] = float64((i*7919+k*104729)%10000) / 10000
	}
	b, _ := json.Marshal(m)
	return os.WriteFile(filepath.Join(run, "metrics.jsonl"), append(b, '\n'), 0o644)
}

// latency appends N single lines to PATH (one write each, the file kept
// open, no fsync) and after each polls the daemon until the run RUN shows
// the point; it prints "RESULT <median ms> <p99 ms> <max ms>".
func latency(path, socket, run, metric string, n int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := daemon.Dial(socket)
	if err != nil {
		return err
	}
	defer c.Close()
	ds := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := fmt.Fprintf(f, "%d %g\n", i, 1/float64(i+1)); err != nil {
			return err
		}
		for {
			d, err := c.Show(context.Background(), run)
			if err != nil {
				return err
			}
			if d.Info.Metrics[metric].Count > int64(i) {
				break
			}
			if time.Since(start) > 10*time.Second {
				return fmt.Errorf("point %d not visible after 10 s", i)
			}
		}
		ds = append(ds, float64(time.Since(start).Microseconds())/1000)
	}
	sort.Float64s(ds)
	fmt.Fprintf(os.Stderr, "RESULT %.2f %.2f %.2f\n", ds[len(ds)/2], ds[len(ds)*99/100], ds[len(ds)-1])
	return nil
}
