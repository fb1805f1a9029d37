// A static Go program (CGO_ENABLED=0) making 500 two-byte anonymous
// mappings directly, then unmapping them: the ptrace backend must count
// every mmap and munmap the process makes, as strace does.
package main

import (
	"fmt"
	"syscall"
)

func main() {
	var maps [][]byte
	for i := 0; i < 500; i++ {
		b, err := syscall.Mmap(-1, 0, 2, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON) // SITE: mmap
		if err != nil {
			panic(err)
		}
		b[0] = 1
		maps = append(maps, b)
	}
	for _, b := range maps {
		syscall.Munmap(b) // SITE: munmap
	}
	fmt.Println(len(maps))
}
