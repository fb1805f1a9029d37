/* Attaches to: uprobes and uretprobes on the C library's malloc, calloc,
 * realloc, posix_memalign, aligned_alloc and memalign, and a uprobe on free,
 * and free, in the processes `pagewaste attach` records (userspace attaches
 * them per process, to the C library that process has mapped).
 *
 * A block handed out is recorded at the call's return, with the stack
 * there (ip is the return address into the caller) and glibc's two words
 * before the block; a block given back, at free's return, with those words
 * as free's entry read them.
 * Between a call's entry and return the thread is marked in
 * `allocator_depth`, so that the system calls the allocator makes for it
 * are charged to the call, as the preload shim charges them.
 *
 * The maps `events`, `traced` and `allocator_depth` are the ones of
 * memory_syscalls.bpf.c: userspace hands this object their descriptors. */
#include "bpf_common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* attach --sample: the mean gap between picks, in bytes (0: every call). A
 * call that entered the kernel, or whose block has a mapping of its own, is
 * always recorded, as is the free of a block whose allocation was. */
const volatile pw_u64 sample_interval = 0;

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, PW_SAMPLE_GAPS);
  __type(key, pw_u32);
  __type(value, pw_u64);
} sample_gaps SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, pw_u32); /* tid */
  __type(value, pw_u64); /* bytes before the next pick */
} sample_countdown SEC(".maps");

/* Sampling: the blocks whose allocation was recorded, so that their frees
 * are. A block the table has no room for is recorded without it: its free
 * is then not (the report counts it live). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1 << 20);
  __type(key, pw_u64);
  __type(value, pw_u32);
} recorded_blocks SEC(".maps");

static __always_inline pw_u64 next_gap(void) {
  pw_u32 index = bpf_get_prandom_u32() % PW_SAMPLE_GAPS;
  pw_u64 *gap = bpf_map_lookup_elem(&sample_gaps, &index);
  return gap && *gap ? *gap : sample_interval;
}

/* Whether an allocation of size bytes is picked (this thread's countdown). */
static __always_inline int picked(pw_u32 tid, pw_u64 size) {
  pw_u64 *left = bpf_map_lookup_elem(&sample_countdown, &tid);
  if (!left) {
    pw_u64 first = next_gap();
    bpf_map_update_elem(&sample_countdown, &tid, &first, BPF_ANY);
    left = bpf_map_lookup_elem(&sample_countdown, &tid);
    if (!left) return 1;
  }
  if (*left > size) {
    *left -= size;
    return 0;
  }
  *left = next_gap();
  return 1;
}

/* Takes address out of the recorded blocks; whether it was there. */
static __always_inline int was_recorded(pw_u64 address) {
  return bpf_map_delete_elem(&recorded_blocks, &address) == 0;
}

struct pending_allocation {
  pw_u32 kind;
  pw_u32 pad;
  pw_u64 size;
  pw_u64 alignment;
  pw_u64 old_address;
  pw_u64 old_chunk[2];
  pw_u64 out; /* posix_memalign: where the block's address goes */
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, pw_u32); /* tid */
  __type(value, struct pending_allocation);
} pending_allocations SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, pw_u32);
  __type(value, struct pw_alloc_event);
} allocation_scratch SEC(".maps");

static __always_inline void read_chunk(pw_u64 address, pw_u64 chunk[2]) {
  if (!address || bpf_probe_read_user(chunk, 2 * sizeof chunk[0], (void *)(address - 16)) != 0) {
    chunk[0] = 0;
    chunk[1] = 0;
  }
}

static __always_inline int enter(pw_u32 kind, pw_u64 size, pw_u64 alignment, pw_u64 old,
                                 pw_u64 out) {
  pw_u64 id = bpf_get_current_pid_tgid();
  if (!recording_process(id >> 32)) return 0;
  pw_u32 tid = (pw_u32)id;
  struct pending_allocation call = {.kind = kind, .size = size, .alignment = alignment,
                                    .old_address = old, .out = out};
  read_chunk(old, call.old_chunk);
  bpf_map_update_elem(&pending_allocations, &tid, &call, BPF_ANY);
  pw_u32 one = 1;
  bpf_map_update_elem(&allocator_depth, &tid, &one, BPF_ANY);
  return 0;
}

static __always_inline void output_free(struct pw_process *p, pw_u32 tid, pw_u32 tgid,
                                        pw_u64 address, const pw_u64 chunk[2]) {
  struct pw_free_event e = {};
  e.header.kind = PW_EVENT_FREE;
  e.header.tid = tid;
  e.header.tgid = tgid;
  e.header.size = sizeof e;
  e.header.time_ns = bpf_ktime_get_ns();
  e.address = address;
  e.chunk[0] = chunk[0];
  e.chunk[1] = chunk[1];
  if (bpf_ringbuf_output(&events, &e, sizeof e, wakeup_flag()) != 0) count_lost(p);
}

static __always_inline int leave(struct pt_regs *ctx) {
  pw_u64 id = bpf_get_current_pid_tgid();
  pw_u32 tid = (pw_u32)id;
  struct pending_allocation *call = bpf_map_lookup_elem(&pending_allocations, &tid);
  pw_u32 *depth = bpf_map_lookup_elem(&allocator_depth, &tid);
  int entered_kernel = depth && *depth == 2;
  bpf_map_delete_elem(&allocator_depth, &tid);
  if (!call) return 0;
  struct pw_process *p = recording_process(id >> 32);
  pw_u32 zero = 0;
  struct pw_alloc_event *e = bpf_map_lookup_elem(&allocation_scratch, &zero);
  if (!p || !e) {
    bpf_map_delete_elem(&pending_allocations, &tid);
    return 0;
  }
  if (call->kind == PW_FREE) {
    if (!sample_interval || was_recorded(call->old_address) || entered_kernel)
      output_free(p, tid, id >> 32, call->old_address, call->old_chunk);
    bpf_map_delete_elem(&pending_allocations, &tid);
    return 0;
  }
  pw_u64 result = BPF_CORE_READ(ctx, ax);
  pw_u64 address = result;
  if (call->kind == PW_POSIX_MEMALIGN) {
    address = 0;
    if ((int)result == 0) bpf_probe_read_user(&address, sizeof address, (void *)call->out);
  }
  if (!address) {
    /* realloc(p, 0) frees p and returns NULL; a failed call changes nothing. */
    if (call->kind == PW_REALLOC && call->old_address && call->size == 0 &&
        (!sample_interval || was_recorded(call->old_address)))
      output_free(p, tid, id >> 32, call->old_address, call->old_chunk);
    bpf_map_delete_elem(&pending_allocations, &tid);
    return 0;
  }
  e->header.kind = PW_EVENT_ALLOC;
  e->header.tid = tid;
  e->header.tgid = id >> 32;
  e->header.time_ns = bpf_ktime_get_ns();
  e->kind = call->kind;
  e->flags = 0;
  e->address = address;
  e->requested = call->size;
  e->alignment = call->alignment;
  e->old_address = call->old_address;
  e->old_chunk[0] = call->old_chunk[0];
  e->old_chunk[1] = call->old_chunk[1];
  bpf_map_delete_elem(&pending_allocations, &tid);
  read_chunk(address, e->chunk);
  if (sample_interval) {
    if (e->old_address && was_recorded(e->old_address)) e->flags |= PW_OLD_RECORDED;
    int own_mapping = (e->chunk[1] & 2) != 0;
    if (!entered_kernel && !own_mapping) {
      if (!picked(tid, e->requested)) {
        /* Not recorded; a realloc still gives back a recorded old block. */
        if (e->flags & PW_OLD_RECORDED)
          output_free(p, tid, id >> 32, e->old_address, e->old_chunk);
        return 0;
      }
      e->flags |= PW_SAMPLED;
    }
    pw_u32 one = 1;
    bpf_map_update_elem(&recorded_blocks, &address, &one, BPF_ANY);
  }
  e->ip = BPF_CORE_READ(ctx, ip);
  e->sp = BPF_CORE_READ(ctx, sp);
  e->bp = BPF_CORE_READ(ctx, bp);
  e->frame_count = 0;
  read_chain(e->bp, e->sp, e->frames, &e->frame_count, &e->flags);
  pw_u64 size = sizeof *e - sizeof e->frames + e->frame_count * sizeof e->frames[0];
  if (size > sizeof *e) size = sizeof *e;
  e->header.size = size;
  if (bpf_ringbuf_output(&events, e, size, wakeup_flag()) != 0) count_lost(p);
  return 0;
}

SEC("uprobe")
int malloc_entry(struct pt_regs *ctx) {
  return enter(PW_MALLOC, BPF_CORE_READ(ctx, di), 0, 0, 0);
}

SEC("uprobe")
int calloc_entry(struct pt_regs *ctx) {
  return enter(PW_CALLOC, BPF_CORE_READ(ctx, di) * BPF_CORE_READ(ctx, si), 0, 0, 0);
}

SEC("uprobe")
int realloc_entry(struct pt_regs *ctx) {
  return enter(PW_REALLOC, BPF_CORE_READ(ctx, si), 0, BPF_CORE_READ(ctx, di), 0);
}

SEC("uprobe")
int posix_memalign_entry(struct pt_regs *ctx) {
  return enter(PW_POSIX_MEMALIGN, BPF_CORE_READ(ctx, dx), BPF_CORE_READ(ctx, si), 0,
               BPF_CORE_READ(ctx, di));
}

SEC("uprobe")
int aligned_alloc_entry(struct pt_regs *ctx) {
  return enter(PW_ALIGNED_ALLOC, BPF_CORE_READ(ctx, si), BPF_CORE_READ(ctx, di), 0, 0);
}

SEC("uprobe")
int memalign_entry(struct pt_regs *ctx) {
  return enter(PW_MEMALIGN, BPF_CORE_READ(ctx, si), BPF_CORE_READ(ctx, di), 0, 0);
}

SEC("uretprobe")
int allocation_return(struct pt_regs *ctx) { return leave(ctx); }

SEC("uprobe")
int free_entry(struct pt_regs *ctx) {
  pw_u64 address = BPF_CORE_READ(ctx, di);
  return address ? enter(PW_FREE, 0, 0, address, 0) : 0;
}
