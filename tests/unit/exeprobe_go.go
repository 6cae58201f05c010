// SPDX-License-Identifier: MIT

// A Go program for test_exeprobe.c, built twice by meson: with CGO_ENABLED=0
// (static) and with CGO_ENABLED=1, where the net package's resolver links
// libc (dynamic, with a PT_INTERP). It only has to exist, not to run.
package main

import (
	"fmt"
	"net"
)

func main() {
	fmt.Println(net.ParseIP("127.0.0.1"))
}
