/* The records the BPF programs (memory_syscalls.bpf.c) put in their ring
 * buffer, and the maps' values userspace reads and writes: C, for both the
 * BPF object (compiled by clang for the BPF target) and the backend's C++.
 * Every field is a fixed-width integer at a naturally aligned offset, so
 * that both compilers lay the structs out the same. */
#ifndef PAGEWASTE_BPF_EVENTS_H
#define PAGEWASTE_BPF_EVENTS_H

#ifdef __bpf__
typedef unsigned int pw_u32;
typedef unsigned long long pw_u64;
typedef long long pw_s64;
#else
#include <stdint.h>
typedef uint32_t pw_u32;
typedef uint64_t pw_u64;
typedef int64_t pw_s64;
#endif

/* The frame-pointer chain is followed this far (the ptrace backend keeps
 * 64 frames; two of them come from the registers and the word at rsp). */
#define PW_MAX_FRAMES 62
/* A saved frame pointer further than this above the frame that saved it
 * is not a frame (the ptrace backend's rule, remote_unwind.cpp). */
#define PW_MAX_STACK_SPAN (64ull << 20)
/* The bytes of a munmap'd range read for its last non-zero byte, at most
 * (usage_estimate.h's kScanCap), and the pages whose residency is probed. */
#define PW_SCAN_CAP (64u << 10)
#define PW_MAX_PROBED_PAGES 65536u

enum pw_event_kind {
  PW_EVENT_SYSCALL = 1,
  PW_EVENT_FORK = 2,  /* a traced process forked a process */
  PW_EVENT_EXEC = 3,  /* a traced process exec'd */
  PW_EVENT_EXIT = 4,  /* a traced process's last thread exited */
  PW_EVENT_ALLOC = 5, /* a malloc-family call returned a block (attach) */
  PW_EVENT_FREE = 6,  /* free, or realloc's old block (attach) */
};

/* The allocator calls the uprobes see (format.h's AllocKind numbering). */
enum pw_alloc_kind {
  PW_MALLOC = 0,
  PW_CALLOC = 1,
  PW_REALLOC = 2,
  PW_POSIX_MEMALIGN = 3,
  PW_ALIGNED_ALLOC = 4,
  PW_MEMALIGN = 5,
  PW_FREE = 100, /* free: no block handed out */
};

struct pw_event_header {
  pw_u32 kind;
  pw_u32 tid;
  pw_u32 tgid;
  pw_u32 size; /* of the whole record */
  pw_u64 time_ns; /* CLOCK_MONOTONIC */
};

/* One saved frame: the caller's frame pointer and the return address. */
struct pw_frame {
  pw_u64 saved_bp;
  pw_u64 return_address;
};

enum pw_syscall_flags {
  PW_TOP_READ = 1u << 0,       /* top holds the word at rsp */
  PW_USAGE_MEASURED = 1u << 1, /* munmap: resident_pages, used_bytes hold */
  PW_CHAIN_CUT = 1u << 2,      /* the chain went on past PW_MAX_FRAMES */
  PW_IN_ALLOCATOR = 1u << 3,   /* made inside a malloc-family call (attach) */
  PW_SAMPLED = 1u << 4,        /* an allocation picked by sampling (attach --sample) */
  PW_OLD_RECORDED = 1u << 5,   /* realloc: its old block's allocation was recorded */
};

/* attach --sample: the gaps between picks, in bytes requested, drawn from
 * this many quantiles of the exponential distribution (userspace fills
 * them): a Poisson process over the bytes, as the preload shim's. */
#define PW_SAMPLE_GAPS 1024

struct pw_syscall_event {
  struct pw_event_header header;
  pw_s64 nr;
  pw_u64 args[6];
  pw_s64 result;
  pw_u64 kernel_ns; /* from the call's entry to its exit */
  pw_u64 ip, sp, bp;
  pw_u64 top;
  pw_u32 flags;
  pw_u32 frame_count;
  pw_u64 resident_pages;
  pw_u64 used_bytes;
  struct pw_frame frames[PW_MAX_FRAMES]; /* frame_count of them are sent */
};

/* A block a malloc-family call returned, with the stack at its return
 * (ip: the return address into the caller) and glibc's two words before
 * the block (prev_size, size with flag bits), read then. */
struct pw_alloc_event {
  struct pw_event_header header;
  pw_u32 kind; /* pw_alloc_kind */
  pw_u32 flags;
  pw_u64 address;
  pw_u64 requested;
  pw_u64 alignment;
  pw_u64 old_address; /* realloc: the block it was given */
  pw_u64 old_chunk[2];
  pw_u64 chunk[2];
  pw_u64 ip, sp, bp;
  pw_u32 frame_count;
  pw_u32 pad;
  struct pw_frame frames[PW_MAX_FRAMES];
};

struct pw_free_event {
  struct pw_event_header header;
  pw_u64 address;
  pw_u64 chunk[2]; /* read at free's entry, before the block goes */
};

struct pw_fork_event {
  struct pw_event_header header; /* tgid: the parent */
  pw_u32 child;
  pw_u32 pad;
};

#define PW_PATH_BYTES 256
struct pw_exec_event {
  struct pw_event_header header;
  pw_u64 start_code; /* where the new image's code starts (mm->start_code) */
  char filename[PW_PATH_BYTES]; /* as execve was given it */
};

struct pw_exit_event {
  struct pw_event_header header;
  pw_u32 exit_code; /* as wait reports it */
  pw_u32 pad;
  pw_u64 lost_events; /* the process's records the ring had no room for */
};

/* attach's allocator feed: a process's table of thread marks (the map
 * `thread_marks`, by tgid), and the marks. */
struct pw_thread_marks {
  pw_u64 address; /* in the process */
  pw_u64 bytes;   /* one per thread id */
};
#define PW_MARK_ALLOCATOR 1
#define PW_MARK_OWN 2

/* A traced process (the map `traced`, by tgid). */
struct pw_process {
  pw_u32 recording; /* 0 until its first exec under run */
  pw_u32 exited;    /* its exit record was lost: userspace removes it */
  pw_u64 lost_events; /* records the ring buffer had no room for */
};

#endif
