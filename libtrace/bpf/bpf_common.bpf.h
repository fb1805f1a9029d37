/* What both BPF objects share: the maps userspace makes one (the second
 * object reuses the first's), the test for a traced process, the ring
 * buffer's wake-up rule, and the frame-pointer walk. Included by
 * memory_syscalls.bpf.c and allocator_calls.bpf.c. */
#ifndef PAGEWASTE_BPF_COMMON_H
#define PAGEWASTE_BPF_COMMON_H

#include <linux/bpf.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "bpf_events.h"
#include "kernel_types.h"

const volatile pw_u64 wakeup_bytes = 1 << 20;

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 64 << 20); /* set by userspace before load */
} events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, pw_u32); /* tgid */
  __type(value, struct pw_process);
} traced SEC(".maps");

/* Threads inside a malloc-family call (attach): their system calls are
 * the call's, as the preload shim counts them. 1: inside; 2: and the call
 * entered the kernel. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, pw_u32); /* tid */
  __type(value, pw_u32);
} allocator_depth SEC(".maps");

static __always_inline struct pw_process *recording_process(pw_u32 tgid) {
  struct pw_process *p = bpf_map_lookup_elem(&traced, &tgid);
  return p && p->recording && !p->exited ? p : 0;
}

static __always_inline pw_u64 wakeup_flag(void) {
  return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > wakeup_bytes ? BPF_RB_FORCE_WAKEUP
                                                                       : BPF_RB_NO_WAKEUP;
}

static __always_inline void count_lost(struct pw_process *p) {
  __sync_fetch_and_add(&p->lost_events, 1);
}

/* The frame-pointer chain from rbp: each frame's saved rbp and return
 * address, for as long as the saved rbp lies above its frame (one switch to
 * another stack allowed, as Go's systemstack makes), within
 * PW_MAX_STACK_SPAN. Userspace applies the ptrace backend's rules to it. */
static __always_inline void read_chain(pw_u64 bp, pw_u64 sp, struct pw_frame *frames,
                                       pw_u32 *frame_count, pw_u32 *flags) {
  pw_u64 frame = bp;
  pw_u64 base = sp; /* the bottom of the stack the walk is on */
  int switched = 0;
  for (int i = 0; i < PW_MAX_FRAMES; i++) {
    if (frame % 8 || frame < base || frame - base >= PW_MAX_STACK_SPAN) return;
    if (bpf_probe_read_user(&frames[i], sizeof frames[i], (void *)frame) != 0) return;
    *frame_count = i + 1;
    pw_u64 saved = frames[i].saved_bp;
    if (saved <= frame || saved - frame >= PW_MAX_STACK_SPAN) {
      if (switched || saved == 0 || saved % 8) return;
      switched = 1;
      base = saved;
    }
    frame = saved;
  }
  *flags |= PW_CHAIN_CUT;
}

#endif
