// A Go program built with cgo (dynamically linked, so run preloads the
// shim into it): its C code allocates through malloc, which the shim sees;
// its Go code's heap comes from the runtime's own mmap calls, which it does
// not.
package main

// #include <stdlib.h>
import "C"

import (
	"fmt"
	"unsafe"
)

var kept [][]byte

func main() {
	for i := 0; i < 10; i++ {
		C.free(unsafe.Pointer(C.malloc(64))) // SITE: cmalloc
	}
	for i := 0; i < 40; i++ {
		b := make([]byte, 8<<20)
		b[0] = 1
		kept = append(kept, b)
	}
	fmt.Println(len(kept))
}
