// Command etcd-txn is the benchmark's raw-etcd baseline from Go's own client (issue 13): the
// same closed loop as test/bench/load.ts (concurrency callers, each sending its next
// transaction when the last one answered, until -ops transactions or -seconds have passed,
// after -warmup uncounted ones), each transaction one compare (create revision 0) and one put
// of a lease-sized value, as a create-if-absent. It prints one JSON line: the latencies in ms
// of the successful transactions, the error count, the first error and the elapsed time.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type result struct {
	Latencies  []float64 `json:"latencies"`
	Errors     int64     `json:"errors"`
	FirstError string    `json:"firstError,omitempty"`
	ElapsedMs  float64   `json:"elapsedMs"`
}

func main() {
	endpoint := flag.String("endpoint", "http://127.0.0.1:2379", "etcd client URL")
	concurrency := flag.Int("concurrency", 16, "callers")
	ops := flag.Int64("ops", 3000, "transactions to count")
	seconds := flag.Float64("seconds", 15, "time limit")
	warmup := flag.Int("warmup", 200, "uncounted transactions first")
	prefix := flag.String("prefix", "/bench/go", "key prefix (unique per run)")
	flag.Parse()

	client, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		fail(err)
	}
	defer client.Close()
	value := `{"pad":"` + strings.Repeat("x", 480) + `"}`
	var seq atomic.Int64
	txn := func() error {
		key := fmt.Sprintf("%s/%d", *prefix, seq.Add(1))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, value)).
			Commit()
		if err == nil && !res.Succeeded {
			err = fmt.Errorf("compare failed for %s", key)
		}
		return err
	}
	for i := 0; i < *warmup; i++ {
		if err := txn(); err != nil {
			fail(err)
		}
	}

	var (
		issued  atomic.Int64
		errs    atomic.Int64
		mu      sync.Mutex
		out     result
		wg      sync.WaitGroup
		started = time.Now()
	)
	deadline := started.Add(time.Duration(*seconds * float64(time.Second)))
	for c := 0; c < *concurrency; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]float64, 0, 1024)
			for issued.Add(1) <= *ops && time.Now().Before(deadline) {
				t0 := time.Now()
				if err := txn(); err != nil {
					if errs.Add(1) == 1 {
						mu.Lock()
						out.FirstError = err.Error()
						mu.Unlock()
					}
					continue
				}
				mine = append(mine, float64(time.Since(t0).Microseconds())/1000)
			}
			mu.Lock()
			out.Latencies = append(out.Latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	out.ElapsedMs = float64(time.Since(started).Microseconds()) / 1000
	out.Errors = errs.Load()
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "etcd-txn:", err)
	os.Exit(1)
}
