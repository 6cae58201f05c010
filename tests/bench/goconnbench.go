// SPDX-License-Identifier: MIT
//
// goconnbench: sequential TCP connections per second of a Go program, for
// scripts/bench (the supervisor: Go makes raw system calls, so under socksify
// each connect() is stopped at the supervisor and carried through the proxy).
//
//	goconnbench [-s SECONDS] [-r ROUNDS]
//
// It starts its own target on 127.0.0.1 (every connection's first byte is
// answered with one byte, then the connection is closed) and, for each round,
// connects, writes 1 byte, reads 1 byte, reads EOF and closes, as many times
// as it can. Prints "best conn/s: N" (the best round).
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func(c net.Conn) {
			b := make([]byte, 1)
			if _, err := c.Read(b); err == nil {
				c.Write(b)
			}
			c.Close()
		}(c)
	}
}

func once(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	b := []byte{'x'}
	if _, err := c.Write(b); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if n, _ := c.Read(b); n != 0 {
		return fmt.Errorf("no EOF")
	}
	return nil
}

func main() {
	secs := flag.Float64("s", 2, "seconds per round")
	rounds := flag.Int("r", 3, "rounds")
	flag.Parse()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "goconnbench:", err)
		os.Exit(1)
	}
	go serve(l)
	addr := l.Addr().String()
	best := 0.0
	for r := 0; r < *rounds; r++ {
		n := 0
		start := time.Now()
		for time.Since(start).Seconds() < *secs {
			if err := once(addr); err != nil {
				fmt.Fprintln(os.Stderr, "goconnbench:", err)
				os.Exit(1)
			}
			n++
		}
		if rate := float64(n) / time.Since(start).Seconds(); rate > best {
			best = rate
		}
	}
	fmt.Printf("best conn/s: %.0f\n", best)
}
