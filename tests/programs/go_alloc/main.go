// A static Go program (CGO_ENABLED=0) whose memory comes from Go's own
// runtime: makeBuffers allocates 40 slices of 8 MiB, each from new heap
// memory the runtime maps for it. The mappings are the runtime's
// (runtime.sysMap, runtime.sysReserve, ...); the call site to name is the
// program's own line that asked.
package main

import "fmt"

var kept [][]byte

//go:noinline
func makeBuffers() {
	for i := 0; i < 40; i++ {
		b := make([]byte, 8<<20) // SITE: make
		b[0] = 1
		kept = append(kept, b)
	}
}

func main() {
	makeBuffers()
	fmt.Println(len(kept))
}
