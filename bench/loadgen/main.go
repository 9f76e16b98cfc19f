// Command loadgen is the load generator of bench/api_load.py: it sends each case's requests to
// `lapor serve` from its own process, at most -concurrency cases in flight, and prints one JSON
// object with what it measured.
//
// It is written in Go, not Python, because the generator shares the machine's two cores with the
// server it measures: an asyncio + httpx generator spent 1.3-2.0 ms of CPU per request, as much
// as the server, so the figure said more about the generator than about the server. This one
// spends a few hundredths of that. It uses the standard library only (nothing to download).
//
// Per case (mode "cases"): POST /v1/complaints with an Idempotency-Key as a channel, the same
// request again (a retry: 200, the same case, "replayed"); POST .../signals/verify with an
// Idempotency-Key as Admin Nasional, and again; GET /v1/complaints/{id}, and again. A request
// that fails in transport, or answers 429/502/503/504, is sent again with the same headers and
// body (the idempotency key makes that safe), at most 8 times. Mode "healthz" sends GET /healthz
// six times per case instead.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const attempts = 8

// load is one run: the latency of every answered request, the retries, what went wrong.
type load struct {
	client    *http.Client
	base      string
	complaint []byte // the start's body
	verify    []byte // the verify signal's body
	mu      sync.Mutex
	latency []time.Duration
	retries int
	errors  []string
}

func (l *load) expect(ok bool, format string, args ...any) {
	if ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errors) < 20 {
		l.errors = append(l.errors, fmt.Sprintf(format, args...))
	}
}

// send is the request, retried on a transport error or a retryable status; its last answer's
// status and body.
func (l *load) send(method, path string, body []byte, headers map[string]string) (int, []byte, error) {
	var lastErr error
	for attempt := 0; attempt < attempts; attempt++ {
		var reader io.Reader
		if body != nil {
			reader = bytes.NewReader(body)
		}
		request, err := http.NewRequest(method, l.base+path, reader)
		if err != nil {
			return 0, nil, err
		}
		if body != nil {
			request.Header.Set("Content-Type", "application/json")
		}
		for name, value := range headers {
			request.Header.Set(name, value)
		}
		began := time.Now()
		answer, err := l.client.Do(request)
		if err != nil {
			lastErr = err
			l.count(0, false)
			time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
			continue
		}
		read, err := io.ReadAll(answer.Body)
		answer.Body.Close()
		if err != nil {
			lastErr = err
			l.count(0, false)
			continue
		}
		took := time.Since(began)
		retryable := answer.StatusCode == 429 || answer.StatusCode == 502 ||
			answer.StatusCode == 503 || answer.StatusCode == 504
		if !retryable || attempt == attempts-1 {
			l.count(took, true)
			return answer.StatusCode, read, nil
		}
		l.count(took, true)
		l.count(0, false)
		wait := 0.05
		if after, err := strconv.ParseFloat(answer.Header.Get("Retry-After"), 64); err == nil {
			wait = after
		}
		time.Sleep(time.Duration(min(wait, 1.0) * float64(time.Second)))
	}
	return 0, nil, fmt.Errorf("%s %s: %v", method, path, lastErr)
}

// count records an answered request's latency, or (answered false) one retry.
func (l *load) count(took time.Duration, answered bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if answered {
		l.latency = append(l.latency, took)
	} else {
		l.retries++
	}
}

type started struct {
	CaseID   string `json:"case_id"`
	Replayed bool   `json:"replayed"`
}

type status struct {
	State string `json:"state"`
}

// oneCase runs one case's six requests; its case id ("" if it was lost).
func (l *load) oneCase(index int, prefix, channel, admin string) string {
	asChannel := map[string]string{"Authorization": "Bearer " + channel,
		"Idempotency-Key": fmt.Sprintf("%s-start-%d", prefix, index)}
	firstCode, firstBody, err1 := l.send("POST", "/v1/complaints", l.complaint, asChannel)
	againCode, againBody, err2 := l.send("POST", "/v1/complaints", l.complaint, asChannel)
	if err1 != nil || err2 != nil || (firstCode != 200 && firstCode != 201) || againCode != 200 {
		l.expect(false, "start %d: %d %d %v %v", index, firstCode, againCode, err1, err2)
		return ""
	}
	var first, again started
	if json.Unmarshal(firstBody, &first) != nil || json.Unmarshal(againBody, &again) != nil {
		l.expect(false, "start %d: answers not JSON", index)
		return ""
	}
	l.expect(again.CaseID == first.CaseID, "start %d: two cases", index)
	l.expect(again.Replayed, "start %d: retry not replayed", index)
	path := "/v1/complaints/" + first.CaseID
	asAdmin := map[string]string{"Authorization": "Bearer " + admin,
		"Idempotency-Key": fmt.Sprintf("%s-verify-%d", prefix, index)}
	for i := 0; i < 2; i++ {
		code, _, err := l.send("POST", path+"/signals/verify", l.verify, asAdmin)
		l.expect(err == nil && code == 200, "verify %d: %d %v", index, code, err)
	}
	reader := map[string]string{"Authorization": "Bearer " + admin}
	for i := 0; i < 2; i++ {
		code, body, err := l.send("GET", path, nil, reader)
		var seen status
		ok := err == nil && code == 200 && json.Unmarshal(body, &seen) == nil && seen.State == "disposed"
		l.expect(ok, "status %d: %d %v", index, code, err)
	}
	return first.CaseID
}

func (l *load) healthz() {
	for i := 0; i < 6; i++ {
		code, _, err := l.send("GET", "/healthz", nil, nil)
		l.expect(err == nil && code == 200, "healthz: %d %v", code, err)
	}
}

func percentile(ordered []time.Duration, share float64) float64 {
	if len(ordered) == 0 {
		return 0
	}
	index := int(share * float64(len(ordered)))
	if index > len(ordered)-1 {
		index = len(ordered) - 1
	}
	return float64(ordered[index].Microseconds()) / 1000
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &usage) != nil {
		return 0
	}
	return float64(usage.Utime.Nano()+usage.Stime.Nano()) / 1e9
}

func main() {
	mode := flag.String("mode", "cases", "cases or healthz")
	base := flag.String("url", "", "the server's base URL")
	cases := flag.Int("cases", 0, "cases (six requests each)")
	concurrency := flag.Int("concurrency", 16, "cases in flight")
	prefix := flag.String("prefix", "load", "idempotency keys' prefix")
	complaint := flag.String("start-body", "", "the JSON body of each start (mode cases)")
	verify := flag.String("verify-body", "", "the JSON body of each verify signal (mode cases)")
	flag.Parse()
	if *base == "" || *cases <= 0 || *concurrency <= 0 || (*mode != "cases" && *mode != "healthz") {
		fmt.Fprintln(os.Stderr, "loadgen: -url, -cases > 0, -concurrency > 0, -mode cases|healthz")
		os.Exit(2)
	}
	channel, admin := os.Getenv("LAPOR_LOAD_CHANNEL_KEY"), os.Getenv("LAPOR_LOAD_ADMIN_KEY")
	if *mode == "cases" && (channel == "" || admin == "" || *complaint == "" || *verify == "") {
		fmt.Fprintln(os.Stderr, "loadgen: mode cases needs -start-body, -verify-body, "+
			"LAPOR_LOAD_CHANNEL_KEY and LAPOR_LOAD_ADMIN_KEY")
		os.Exit(2)
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:        *concurrency,
		MaxIdleConnsPerHost: *concurrency,
		MaxConnsPerHost:     *concurrency,
		DisableCompression:  true,
	}
	l := &load{
		client:    &http.Client{Transport: transport, Timeout: 60 * time.Second},
		base:      *base,
		complaint: []byte(*complaint),
		verify:    []byte(*verify),
	}
	ids := make([]string, *cases)
	next := make(chan int)
	var done sync.WaitGroup
	began, cpu := time.Now(), cpuSeconds()
	for worker := 0; worker < *concurrency; worker++ {
		done.Add(1)
		go func() {
			defer done.Done()
			for index := range next {
				if *mode == "cases" {
					ids[index] = l.oneCase(index, *prefix, channel, admin)
				} else {
					l.healthz()
				}
			}
		}()
	}
	for index := 0; index < *cases; index++ {
		next <- index
	}
	close(next)
	done.Wait()
	seconds, used := time.Since(began).Seconds(), cpuSeconds()-cpu
	sort.Slice(l.latency, func(i, j int) bool { return l.latency[i] < l.latency[j] })
	result := map[string]any{
		"requests":        len(l.latency),
		"seconds":         seconds,
		"requests_per_s":  float64(len(l.latency)) / seconds,
		"p50_ms":          percentile(l.latency, 0.50),
		"p95_ms":          percentile(l.latency, 0.95),
		"p99_ms":          percentile(l.latency, 0.99),
		"max_ms":          percentile(l.latency, 1.0),
		"retries":         l.retries,
		"errors":          append([]string{}, l.errors...),
		"generator_cpu_s": used,
	}
	if *mode == "cases" {
		answered := []string{}
		for _, id := range ids {
			if id != "" {
				answered = append(answered, id)
			}
		}
		result["case_ids"] = answered
	}
	if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
		os.Exit(1)
	}
}
