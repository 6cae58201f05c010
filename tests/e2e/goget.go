// SPDX-License-Identifier: MIT

// goget: an HTTP client written in Go, for the supervisor's tests
// (tests/e2e/supervise.bats). Go programs make their system calls themselves
// (no libc connect() for LD_PRELOAD to interpose) and the pure-Go resolver
// sends its DNS queries itself; meson builds this file twice, as goget-static
// (CGO_ENABLED=0) and goget-dynamic (CGO_ENABLED=1, linked against libc).
// Standard library only.
//
//	goget [-n N] [-pre URL] [-sh CMD] [-udp HOST:PORT] [-t DURATION] URL...
//
// In this order:
//
//	-pre URL       fetch URL first
//	-sh CMD        run sh -c CMD (its stdout and stderr are goget's)
//	-udp HOST:PORT send one datagram there: "udp sent HOST:PORT LEN" or
//	               "udp fail HOST:PORT ERR" (a connected UDP socket, then write)
//	URL...         fetch each URL: "ok URL STATUS BYTES" or "fail URL ERR";
//	               with -n N, the first URL from N goroutines released at once,
//	               one "fail" line per failure and "ok K/N"
//
// Exits with CMD's status when it is not 0 (128+N for a signal, as a shell
// reports it), else 0 when every fetch and the datagram succeeded, else 1.
// No proxy from the environment is used, and no connection is reused (each
// fetch is one connect()).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

var (
	outMu  sync.Mutex
	client *http.Client
)

func say(format string, args ...interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// fetch GETs url and reads the whole body; quiet leaves the "ok" line out.
func fetch(url string, quiet bool) bool {
	resp, err := client.Get(url)
	if err != nil {
		say("fail %s %v", url, err)
		return false
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		say("fail %s reading the body after %d bytes: %v", url, n, err)
		return false
	}
	if resp.StatusCode != http.StatusOK {
		say("fail %s status %d", url, resp.StatusCode)
		return false
	}
	if !quiet {
		say("ok %s %d %d", url, resp.StatusCode, n)
	}
	return true
}

// fetchMany fetches url from n goroutines released together.
func fetchMany(url string, n int) bool {
	var wg sync.WaitGroup
	var mu sync.Mutex
	good := 0
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if fetch(url, true) {
				mu.Lock()
				good++
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	say("ok %d/%d", good, n)
	return good == n
}

// runShell runs sh -c cmd and returns its status as a shell reports it.
func runShell(cmd string) int {
	c := exec.Command("sh", "-c", cmd)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := c.Run()
	if err == nil {
		return 0
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exitErr.ExitCode()
	}
	say("fail sh -c: %v", err)
	return 127
}

func sendUDP(hostport string, timeout time.Duration) bool {
	msg := []byte("goget datagram\n")
	c, err := net.DialTimeout("udp", hostport, timeout)
	if err != nil {
		say("udp fail %s %v", hostport, err)
		return false
	}
	defer c.Close()
	n, err := c.Write(msg)
	if err != nil {
		say("udp fail %s %v", hostport, err)
		return false
	}
	say("udp sent %s %d", hostport, n)
	return true
}

func main() {
	n := flag.Int("n", 1, "fetch the first URL from N goroutines at once")
	pre := flag.String("pre", "", "fetch this URL before anything else")
	sh := flag.String("sh", "", "run sh -c CMD before the URLs; exit with its status")
	udp := flag.String("udp", "", "send one datagram to HOST:PORT")
	timeout := flag.Duration("t", 15*time.Second, "timeout of each fetch")
	flag.Parse()

	dialer := &net.Dialer{Timeout: *timeout}
	client = &http.Client{
		Timeout: *timeout,
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       dialer.DialContext,
			DisableKeepAlives: true,
		},
	}

	ok := true
	if *pre != "" {
		ok = fetch(*pre, false) && ok
	}
	status := 0
	if *sh != "" {
		status = runShell(*sh)
	}
	if *udp != "" {
		ok = sendUDP(*udp, *timeout) && ok
	}
	for i, url := range flag.Args() {
		if i == 0 && *n > 1 {
			ok = fetchMany(url, *n) && ok
		} else {
			ok = fetch(url, false) && ok
		}
	}
	if status != 0 {
		os.Exit(status)
	}
	if !ok {
		os.Exit(1)
	}
}
