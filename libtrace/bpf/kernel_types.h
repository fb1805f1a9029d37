/* The few kernel structures the BPF programs read, declared with only the
 * fields they use. preserve_access_index makes each access a CO-RE
 * relocation: libbpf finds the field's offset in the running kernel's BTF
 * (/sys/kernel/btf/vmlinux) when it loads the programs, so the object is
 * built without the kernel's headers and runs on any kernel with BTF. */
#ifndef PAGEWASTE_KERNEL_TYPES_H
#define PAGEWASTE_KERNEL_TYPES_H

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/* x86-64: the user registers saved at system call entry. */
struct pt_regs {
  unsigned long bp;
  unsigned long ax;
  unsigned long dx;
  unsigned long si;
  unsigned long di;
  unsigned long r8;
  unsigned long r9;
  unsigned long r10;
  unsigned long orig_ax;
  unsigned long ip;
  unsigned long sp;
};

typedef struct {
  int counter;
} atomic_t;

struct signal_struct {
  atomic_t live; /* threads not yet exited */
};

struct mm_struct {
  unsigned long start_code;
};

struct task_struct {
  int pid;
  int tgid;
  int exit_code;
  struct signal_struct *signal;
  struct mm_struct *mm;
};

struct linux_binprm {
  const char *filename;
};

#pragma clang attribute pop

#endif
