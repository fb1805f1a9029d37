/* Attaches to: the raw tracepoints sys_enter and sys_exit (every system
 * call of every process; all but the memory ones of traced processes leave
 * at the first test), sched_process_fork, sched_process_exec and
 * sched_process_exit.
 *
 * For each memory system call (mmap, munmap, mremap, brk, mprotect, madvise)
 * of a process in the map `traced`, one record in the ring buffer `events`
 * at the call's exit: its arguments and result, the time from its entry, the
 * registers the unwinder starts from, and the frame-pointer chain above
 * them; for munmap, what the range held, measured at the entry, before it
 * goes. A process a traced one forks is traced too; exec and the exit of a
 * process's last thread are recorded for userspace to start and end its
 * traces. Nothing here stops the program.
 *
 * Reader wake-ups are batched: a record wakes the reader only once more than
 * wakeup_bytes wait (or for process events, which are rare); the reader
 * polls on its own otherwise. A wake-up per record costs more than the
 * record. A record the ring has no room for is counted, per process, in
 * `traced`.
 *
 * Under attach, a call made inside a malloc-family call is marked as the
 * allocator's, from the uprobes' `allocator_depth` or the injected feed's
 * `thread_marks`. */
#include "bpf_common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* x86-64 system call numbers. */
#define NR_MMAP 9
#define NR_MPROTECT 10
#define NR_MUNMAP 11
#define NR_BRK 12
#define NR_MREMAP 25
#define NR_MADVISE 28
#define PAGE_SIZE 4096ull

/* A call between its entry and exit, by thread. */
struct pending_call {
  pw_u64 start_ns;
  pw_u64 resident_pages;
  pw_u64 used_bytes;
  pw_u32 measured;
  pw_u32 pad;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, pw_u32); /* tid */
  __type(value, struct pending_call);
} pending SEC(".maps");

/* Residency of a munmap'd range, page by page: a page is resident when a
 * read of it does not fault (bpf_probe_read_user never faults a page in). */
struct residency_walk {
  pw_u64 start;
  pw_u64 resident;
  pw_u64 last_resident; /* page index + 1 */
};

/* The last non-zero byte, backwards from the end of the last resident page
 * while the pages stay resident, reading at most PW_SCAN_CAP bytes: one
 * bpf_loop step a block of the page, read into scratch. */
struct extent_scan {
  pw_u64 start;
  pw_u64 last_resident;
  pw_u64 extent; /* offset of the byte + 1; 0 while not found */
  pw_u64 offset; /* of the page it is in */
};

/* The record being built (too large for the BPF stack), a page read for
 * its last non-zero byte, and the loops' state: in a map, where the
 * verifier does not follow each iteration's values (on the stack, it would
 * walk all 65,536 steps of a loop to see it ends). */
struct scratch {
  struct pw_syscall_event event;
  pw_u64 page[PAGE_SIZE / 8];
  struct residency_walk walk;
  struct extent_scan scan;
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, pw_u32);
  __type(value, struct scratch);
} scratch_space SEC(".maps");

/* attach with the allocator feed (inject/feed_layout.h): where each traced
 * process marks its threads inside a malloc-family call, one byte per
 * thread id. A call made under PW_MARK_ALLOCATOR is charged to the
 * allocator call; one under PW_MARK_OWN is the feed library's, not the
 * program's, and is not recorded. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, pw_u32); /* tgid */
  __type(value, struct pw_thread_marks);
} thread_marks SEC(".maps");

/* The thread's mark in its process's feed (0 without one). */
static __always_inline pw_u32 feed_mark(pw_u32 tgid, pw_u32 tid) {
  struct pw_thread_marks *marks = bpf_map_lookup_elem(&thread_marks, &tgid);
  unsigned char mark = 0;
  if (marks && tid < marks->bytes) bpf_probe_read_user(&mark, 1, (void *)(marks->address + tid));
  return mark;
}

static __always_inline int is_memory_syscall(long nr) {
  return nr == NR_MMAP || nr == NR_MUNMAP || nr == NR_MREMAP || nr == NR_BRK ||
         nr == NR_MPROTECT || nr == NR_MADVISE;
}

/* bpf_loop's context must be on the stack: a pointer to the scratch. */
struct loop_context {
  struct scratch *s;
};

static long probe_page(pw_u32 index, void *data) {
  struct residency_walk *walk = &((struct loop_context *)data)->s->walk;
  char byte;
  if (bpf_probe_read_user(&byte, 1, (void *)(walk->start + index * PAGE_SIZE)) == 0) {
    walk->resident++;
    walk->last_resident = index + 1;
  }
  return 0;
}

#define WORDS_PER_PAGE (PAGE_SIZE / 8)

/* The bytes of word up to its last non-zero one (little-endian). */
static __always_inline pw_u64 significant_bytes(pw_u64 word) {
  pw_u64 n = 0;
  if (word >> 32) {
    n += 4;
    word >>= 32;
  }
  if (word >> 16) {
    n += 2;
    word >>= 16;
  }
  if (word >> 8) {
    n += 1;
    word >>= 8;
  }
  return n + (word ? 1 : 0);
}

/* The scan reads a block at a time, from the end back: most pages hold
 * their last non-zero byte in their last block, or are zero for many
 * blocks, which one OR over the block skips. */
#define SCAN_BLOCK 512
#define WORDS_PER_BLOCK (SCAN_BLOCK / 8)
#define BLOCKS_PER_PAGE (PAGE_SIZE / SCAN_BLOCK)

static long scan_block(pw_u32 index, void *data) {
  struct scratch *s = ((struct loop_context *)data)->s;
  struct extent_scan *scan = &s->scan;
  pw_u64 page = index / BLOCKS_PER_PAGE;
  if (page >= scan->last_resident) return 1;
  pw_u64 page_offset = (scan->last_resident - 1 - page) * PAGE_SIZE;
  pw_u64 offset = page_offset + (BLOCKS_PER_PAGE - 1 - index % BLOCKS_PER_PAGE) * SCAN_BLOCK;
  if (bpf_probe_read_user(s->page, SCAN_BLOCK, (void *)(scan->start + offset)) != 0)
    return 1;  /* not resident: the scan stops */
  pw_u64 any = 0;
  for (int word = 0; word < WORDS_PER_BLOCK; word++) any |= s->page[word];
  if (!any) return 0;
  for (int word = WORDS_PER_BLOCK - 1; word >= 0; word--) {
    pw_u64 value = s->page[word];
    if (!value) continue;
    scan->extent = offset + word * 8 + significant_bytes(value);
    scan->offset = page_offset;
    return 1;
  }
  return 1;
}

static __always_inline void measure_usage(struct pending_call *call, pw_u64 start,
                                          pw_u64 length) {
  pw_u64 pages = (length + PAGE_SIZE - 1) / PAGE_SIZE;
  if (start % PAGE_SIZE || length == 0 || pages > PW_MAX_PROBED_PAGES) return;
  pw_u32 zero = 0;
  struct scratch *s = bpf_map_lookup_elem(&scratch_space, &zero);
  if (!s) return;
  struct residency_walk *walk = &s->walk;
  walk->start = start;
  walk->resident = 0;
  walk->last_resident = 0;
  struct loop_context context = {.s = s};
  bpf_loop(pages, probe_page, &context, 0);
  call->measured = 1;
  call->resident_pages = walk->resident;
  if (!walk->resident) return;
  struct extent_scan *scan = &s->scan;
  scan->start = start;
  scan->last_resident = walk->last_resident;
  scan->extent = 0;
  scan->offset = 0;
  bpf_loop(PW_SCAN_CAP / SCAN_BLOCK, scan_block, &context, 0);
  if (!scan->extent) return;
  /* As usage_estimate.h: pages never made resident were never written. */
  pw_u64 dense = (walk->resident - 1) * PAGE_SIZE + (scan->extent - scan->offset);
  pw_u64 used = scan->extent < dense ? scan->extent : dense;
  call->used_bytes = used > length ? length : used;
}

SEC("raw_tp/sys_enter")
int on_sys_enter(struct bpf_raw_tracepoint_args *ctx) {
  long nr = (long)ctx->args[1];
  if (!is_memory_syscall(nr)) return 0;
  pw_u64 id = bpf_get_current_pid_tgid();
  if (!recording_process(id >> 32)) return 0;
  pw_u32 tid = (pw_u32)id;
  struct pending_call call = {};
  /* An allocator's own munmap (attach) is charged to its call: what the
   * range held is not measured. */
  if (nr == NR_MUNMAP && !bpf_map_lookup_elem(&allocator_depth, &tid) &&
      !feed_mark(id >> 32, tid)) {
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    measure_usage(&call, BPF_CORE_READ(regs, di), BPF_CORE_READ(regs, si));
  }
  call.start_ns = bpf_ktime_get_ns();
  bpf_map_update_elem(&pending, &tid, &call, BPF_ANY);
  return 0;
}

SEC("raw_tp/sys_exit")
int on_sys_exit(struct bpf_raw_tracepoint_args *ctx) {
  struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
  long nr = BPF_CORE_READ(regs, orig_ax);
  if (!is_memory_syscall(nr)) return 0;
  pw_u64 id = bpf_get_current_pid_tgid();
  pw_u32 tid = (pw_u32)id;
  struct pending_call *call = bpf_map_lookup_elem(&pending, &tid);
  if (!call) return 0;  /* not traced, or entered before tracing started */
  pw_u64 now = bpf_ktime_get_ns();
  pw_u32 tgid = id >> 32;
  struct pw_process *p = recording_process(tgid);
  pw_u32 zero = 0;
  struct scratch *s = bpf_map_lookup_elem(&scratch_space, &zero);
  if (!p || !s) {
    bpf_map_delete_elem(&pending, &tid);
    return 0;
  }
  pw_u32 mark = feed_mark(tgid, tid);
  if (mark == PW_MARK_OWN) {
    bpf_map_delete_elem(&pending, &tid);
    return 0;
  }
  struct pw_syscall_event *e = &s->event;
  e->header.kind = PW_EVENT_SYSCALL;
  e->header.tid = tid;
  e->header.tgid = id >> 32;
  e->header.time_ns = now;
  e->nr = nr;
  e->args[0] = BPF_CORE_READ(regs, di);
  e->args[1] = BPF_CORE_READ(regs, si);
  e->args[2] = BPF_CORE_READ(regs, dx);
  e->args[3] = BPF_CORE_READ(regs, r10);
  e->args[4] = BPF_CORE_READ(regs, r8);
  e->args[5] = BPF_CORE_READ(regs, r9);
  e->result = (long)ctx->args[1];
  e->kernel_ns = now - call->start_ns;
  e->ip = BPF_CORE_READ(regs, ip);
  e->sp = BPF_CORE_READ(regs, sp);
  e->bp = BPF_CORE_READ(regs, bp);
  e->flags = call->measured ? PW_USAGE_MEASURED : 0;
  e->resident_pages = call->resident_pages;
  e->used_bytes = call->used_bytes;
  bpf_map_delete_elem(&pending, &tid);
  if (bpf_probe_read_user(&e->top, sizeof e->top, (void *)e->sp) == 0) e->flags |= PW_TOP_READ;
  e->frame_count = 0;
  read_chain(e->bp, e->sp, e->frames, &e->frame_count, &e->flags);
  pw_u32 *depth = bpf_map_lookup_elem(&allocator_depth, &tid);
  if (depth && *depth) {
    e->flags |= PW_IN_ALLOCATOR;
    *depth = 2;
  }
  if (mark == PW_MARK_ALLOCATOR) e->flags |= PW_IN_ALLOCATOR;
  pw_u64 size = sizeof *e - sizeof e->frames + e->frame_count * sizeof e->frames[0];
  if (size > sizeof *e) size = sizeof *e;
  e->header.size = size;
  if (bpf_ringbuf_output(&events, e, size, wakeup_flag()) != 0) count_lost(p);
  return 0;
}

SEC("raw_tp/sched_process_fork")
int on_fork(struct bpf_raw_tracepoint_args *ctx) {
  struct task_struct *parent = (struct task_struct *)ctx->args[0];
  struct task_struct *child = (struct task_struct *)ctx->args[1];
  pw_u32 parent_tgid = BPF_CORE_READ(parent, tgid);
  pw_u32 child_pid = BPF_CORE_READ(child, pid);
  if (child_pid != (pw_u32)BPF_CORE_READ(child, tgid)) return 0;  /* a thread */
  struct pw_process *p = bpf_map_lookup_elem(&traced, &parent_tgid);
  if (!p || p->exited) return 0;
  struct pw_process copy = {.recording = p->recording};
  bpf_map_update_elem(&traced, &child_pid, &copy, BPF_ANY);
  struct pw_fork_event e = {};
  e.header.kind = PW_EVENT_FORK;
  e.header.tid = child_pid;
  e.header.tgid = parent_tgid;
  e.header.size = sizeof e;
  e.header.time_ns = bpf_ktime_get_ns();
  e.child = child_pid;
  if (bpf_ringbuf_output(&events, &e, sizeof e, BPF_RB_FORCE_WAKEUP) != 0) count_lost(p);
  return 0;
}

SEC("raw_tp/sched_process_exec")
int on_exec(struct bpf_raw_tracepoint_args *ctx) {
  struct task_struct *task = (struct task_struct *)ctx->args[0];
  struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
  pw_u32 tgid = BPF_CORE_READ(task, tgid);
  struct pw_process *p = bpf_map_lookup_elem(&traced, &tgid);
  if (!p || p->exited) return 0;
  p->recording = 1;
  struct pw_exec_event *e = bpf_ringbuf_reserve(&events, sizeof *e, 0);
  if (!e) {
    count_lost(p);
    return 0;
  }
  e->header.kind = PW_EVENT_EXEC;
  e->header.tid = BPF_CORE_READ(task, pid);
  e->header.tgid = tgid;
  e->header.size = sizeof *e;
  e->header.time_ns = bpf_ktime_get_ns();
  e->start_code = BPF_CORE_READ(task, mm, start_code);
  const char *filename = BPF_CORE_READ(bprm, filename);
  if (bpf_probe_read_kernel_str(e->filename, sizeof e->filename, filename) < 0)
    e->filename[0] = 0;
  bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
  return 0;
}

SEC("raw_tp/sched_process_exit")
int on_exit(struct bpf_raw_tracepoint_args *ctx) {
  struct task_struct *task = (struct task_struct *)ctx->args[0];
  pw_u32 tid = BPF_CORE_READ(task, pid);
  pw_u32 tgid = BPF_CORE_READ(task, tgid);
  bpf_map_delete_elem(&pending, &tid);
  struct pw_process *p = bpf_map_lookup_elem(&traced, &tgid);
  if (!p || BPF_CORE_READ(task, signal, live.counter) != 0) return 0;
  struct pw_exit_event e = {};
  e.header.kind = PW_EVENT_EXIT;
  e.header.tid = tid;
  e.header.tgid = tgid;
  e.header.size = sizeof e;
  e.header.time_ns = bpf_ktime_get_ns();
  e.exit_code = BPF_CORE_READ(task, exit_code);
  e.lost_events = p->lost_events;
  /* The process leaves `traced` only once its exit is in the ring: a lost
   * exit leaves it there, marked, and userspace finds the process gone. */
  if (bpf_ringbuf_output(&events, &e, sizeof e, BPF_RB_FORCE_WAKEUP) != 0) {
    count_lost(p);
    p->exited = 1;
    return 0;
  }
  bpf_map_delete_elem(&traced, &tgid);
  return 0;
}
