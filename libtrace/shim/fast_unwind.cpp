// The shim's stack walk: each return address's unwind rule, looked up once and
// cached (fast_unwind.h).
#include "fast_unwind.h"

#include <elf.h>
#include <link.h>

#include <atomic>
#include <cstring>

#include "producer/raw_mmap.h"
#include "format/varint.h"

namespace pagewaste::shim {
namespace {

// ---- Rules -------------------------------------------------------------------

// How to get from a frame to its caller's, packed in 64 bits so that a cache
// slot is read in one load. CFA: the caller's stack pointer.
struct Rule {
  enum Flags : uint8_t {
    kValid = 1,         // computed (a zero word is an empty slot)
    kCfaFromBp = 2,     // CFA = rbp + cfa_offset (else rsp + cfa_offset)
    kBpSaved = 4,       // the caller's rbp is at CFA + bp_offset
    kOutermost = 8,     // no caller: the return address is undefined
    kUnsupported = 16,  // a rule this walker does not follow
  };
  int32_t cfa_offset = 0;
  int16_t bp_offset = 0;
  int8_t ra_offset = 0;
  uint8_t flags = 0;

  uint64_t Pack() const {
    return static_cast<uint32_t>(cfa_offset) | uint64_t{static_cast<uint16_t>(bp_offset)} << 32 |
           uint64_t{static_cast<uint8_t>(ra_offset)} << 48 | uint64_t{flags} << 56;
  }
  static Rule Unpack(uint64_t v) {
    Rule r;
    r.cfa_offset = static_cast<int32_t>(static_cast<uint32_t>(v));
    r.bp_offset = static_cast<int16_t>(static_cast<uint16_t>(v >> 32));
    r.ra_offset = static_cast<int8_t>(static_cast<uint8_t>(v >> 48));
    r.flags = static_cast<uint8_t>(v >> 56);
    return r;
  }
  static Rule Unsupported() {
    Rule r;
    r.flags = kValid | kUnsupported;
    return r;
  }
};

// ---- Reading DWARF call frame information --------------------------------------

// DW_EH_PE pointer encodings.
enum : uint8_t {
  kPeAbsptr = 0x00, kPeUleb128 = 0x01, kPeUdata2 = 0x02, kPeUdata4 = 0x03, kPeUdata8 = 0x04,
  kPeSleb128 = 0x09, kPeSdata2 = 0x0a, kPeSdata4 = 0x0b, kPeSdata8 = 0x0c,
  kPePcrel = 0x10, kPeDatarel = 0x30, kPeIndirect = 0x80, kPeOmit = 0xff,
};

constexpr int kRegBp = 6;
constexpr int kRegSp = 7;
constexpr int kRegRa = 16;

struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;

  bool Has(size_t n) {
    if (static_cast<size_t>(end - p) < n) ok = false;
    return ok;
  }
  uint8_t U8() { return Has(1) ? *p++ : 0; }
  template <typename T>
  T Fixed() {
    T v{};
    if (Has(sizeof v)) {
      memcpy(&v, p, sizeof v);
      p += sizeof v;
    }
    return v;
  }
  uint64_t Uleb() {  // the trace's own varints are unsigned LEB128 too
    uint64_t v = 0;
    if (ok && !DecodeVarint(&p, end, &v)) ok = false;
    return v;
  }
  int64_t Sleb() {
    int64_t v = 0;
    int shift = 0;
    uint8_t b = 0;
    do {
      b = U8();
      if (shift < 64) v |= int64_t{b & 0x7f} << shift;
      shift += 7;
    } while (ok && (b & 0x80));
    if (shift < 64 && (b & 0x40)) v |= -(int64_t{1} << shift);
    return v;
  }
  // A pointer in encoding enc; data_base for datarel.
  uint64_t Pointer(uint8_t enc, uint64_t data_base) {
    if (enc == kPeOmit) return 0;
    uint64_t base = 0;
    switch (enc & 0x70) {
      case 0: break;
      case kPePcrel: base = reinterpret_cast<uintptr_t>(p); break;
      case kPeDatarel: base = data_base; break;
      default: ok = false; return 0;
    }
    uint64_t v;
    switch (enc & 0x0f) {
      case kPeAbsptr: case kPeUdata8: case kPeSdata8: v = Fixed<uint64_t>(); break;
      case kPeUleb128: v = Uleb(); break;
      case kPeUdata2: v = Fixed<uint16_t>(); break;
      case kPeUdata4: v = Fixed<uint32_t>(); break;
      case kPeSleb128: v = static_cast<uint64_t>(Sleb()); break;
      case kPeSdata2: v = static_cast<uint64_t>(int64_t{Fixed<int16_t>()}); break;
      case kPeSdata4: v = static_cast<uint64_t>(int64_t{Fixed<int32_t>()}); break;
      default: ok = false; return 0;
    }
    v += base;
    if ((enc & kPeIndirect) && ok && v) v = *reinterpret_cast<const uint64_t*>(v);
    return v;
  }
};

// The row of the CFA table being built: only what the walk needs.
struct Row {
  int cfa_reg = kRegSp;
  int64_t cfa_offset = 8;
  bool bp_saved = false;
  int64_t bp_offset = 0;
  bool ra_saved = false;
  int64_t ra_offset = 0;
  bool ra_undefined = false;
  bool unsupported = false;
};

struct Cie {
  uint64_t code_align = 1;
  int64_t data_align = -8;
  uint64_t ra_reg = kRegRa;
  uint8_t fde_encoding = kPeAbsptr;
  bool has_augmentation_data = false;
  bool signal_frame = false;
  const uint8_t* instructions = nullptr;
  const uint8_t* end = nullptr;
};

bool ParseCie(const uint8_t* cie, Cie* out) {
  Reader r{cie, cie + 8};
  uint32_t length = r.Fixed<uint32_t>();
  if (length == 0 || length == 0xffffffff) return false;
  r.end = cie + 4 + length;
  if (r.Fixed<uint32_t>() != 0) return false;  // not a CIE
  uint8_t version = r.U8();
  const char* augmentation = reinterpret_cast<const char*>(r.p);
  size_t aug_len = strnlen(augmentation, static_cast<size_t>(r.end - r.p));
  r.p += aug_len + 1;
  if (augmentation[0] && augmentation[0] != 'z') return false;  // "eh" and others
  out->code_align = r.Uleb();
  out->data_align = r.Sleb();
  out->ra_reg = version == 1 ? r.U8() : r.Uleb();
  if (augmentation[0] == 'z') {
    out->has_augmentation_data = true;
    uint64_t data_len = r.Uleb();
    const uint8_t* data_end = r.p + data_len;
    for (const char* a = augmentation + 1; *a && r.ok; ++a) {
      if (*a == 'R') {
        out->fde_encoding = r.U8();
      } else if (*a == 'P') {
        uint8_t enc = r.U8();
        r.Pointer(static_cast<uint8_t>(enc & ~kPeIndirect), 0);
      } else if (*a == 'L') {
        r.U8();
      } else if (*a == 'S') {
        out->signal_frame = true;
      } else {
        return false;  // unknown: its data could change how FDEs read
      }
    }
    r.p = data_end;
  }
  out->instructions = r.p;
  out->end = r.end;
  return r.ok && r.p <= r.end;
}

// Runs CFA instructions until the location passes target (or they end).
void Execute(const uint8_t* p, const uint8_t* end, const Cie& cie, uint64_t location,
             uint64_t target, const Row& initial, Row* row) {
  Reader r{p, end};
  Row stack[8];
  int depth = 0;
  auto set_offset = [&](uint64_t reg, int64_t offset) {
    if (reg == kRegBp) {
      row->bp_saved = true;
      row->bp_offset = offset;
    } else if (reg == cie.ra_reg) {
      row->ra_saved = true;
      row->ra_offset = offset;
      row->ra_undefined = false;
    }
  };
  auto restore = [&](uint64_t reg) {
    if (reg == kRegBp) {
      row->bp_saved = initial.bp_saved;
      row->bp_offset = initial.bp_offset;
    } else if (reg == cie.ra_reg) {
      row->ra_saved = initial.ra_saved;
      row->ra_offset = initial.ra_offset;
      row->ra_undefined = initial.ra_undefined;
    }
  };
  auto other_rule = [&](uint64_t reg) {  // a rule we cannot follow
    if (reg == kRegBp || reg == cie.ra_reg) row->unsupported = true;
  };
  while (r.ok && r.p < r.end) {
    uint8_t op = r.U8();
    uint8_t low = op & 0x3f;
    switch (op >> 6) {
      case 1:  // advance_loc
        location += low * cie.code_align;
        if (location > target) return;
        continue;
      case 2:  // offset
        set_offset(low, static_cast<int64_t>(r.Uleb()) * cie.data_align);
        continue;
      case 3:  // restore
        restore(low);
        continue;
      default: break;
    }
    switch (op) {
      case 0x00: break;  // nop
      case 0x01: location = r.Pointer(cie.fde_encoding, 0); if (location > target) return; break;
      case 0x02: location += r.U8() * cie.code_align; if (location > target) return; break;
      case 0x03: location += r.Fixed<uint16_t>() * cie.code_align; if (location > target) return; break;
      case 0x04: location += r.Fixed<uint32_t>() * cie.code_align; if (location > target) return; break;
      case 0x05: { uint64_t reg = r.Uleb(); set_offset(reg, static_cast<int64_t>(r.Uleb()) * cie.data_align); break; }
      case 0x06: restore(r.Uleb()); break;
      case 0x07: {  // undefined
        uint64_t reg = r.Uleb();
        if (reg == cie.ra_reg) row->ra_undefined = true;
        if (reg == kRegBp) row->bp_saved = false;
        break;
      }
      case 0x08: { uint64_t reg = r.Uleb(); if (reg == kRegBp) row->bp_saved = false; break; }
      case 0x09: { uint64_t reg = r.Uleb(); r.Uleb(); other_rule(reg); break; }  // register
      case 0x0a: if (depth < 8) stack[depth++] = *row; else row->unsupported = true; break;
      case 0x0b: if (depth > 0) *row = stack[--depth]; else row->unsupported = true; break;
      case 0x0c: row->cfa_reg = static_cast<int>(r.Uleb()); row->cfa_offset = static_cast<int64_t>(r.Uleb()); break;
      case 0x0d: row->cfa_reg = static_cast<int>(r.Uleb()); break;
      case 0x0e: row->cfa_offset = static_cast<int64_t>(r.Uleb()); break;
      case 0x0f: r.p += r.Uleb(); row->unsupported = true; break;  // def_cfa_expression
      case 0x10: case 0x16: { uint64_t reg = r.Uleb(); r.p += r.Uleb(); other_rule(reg); break; }
      case 0x11: { uint64_t reg = r.Uleb(); set_offset(reg, r.Sleb() * cie.data_align); break; }
      case 0x12: row->cfa_reg = static_cast<int>(r.Uleb()); row->cfa_offset = r.Sleb() * cie.data_align; break;
      case 0x13: row->cfa_offset = r.Sleb() * cie.data_align; break;
      case 0x14: case 0x15: { uint64_t reg = r.Uleb(); r.Uleb(); other_rule(reg); break; }
      case 0x2e: r.Uleb(); break;  // GNU_args_size
      case 0x2f: { uint64_t reg = r.Uleb(); set_offset(reg, -static_cast<int64_t>(r.Uleb()) * cie.data_align); break; }
      default: row->unsupported = true; return;
    }
    if (row->unsupported) return;
  }
  if (!r.ok) row->unsupported = true;
}

// ---- Finding the FDE of an address ----------------------------------------------

struct ModuleLookup {
  uintptr_t pc;
  const uint8_t* eh_frame_hdr = nullptr;
};

int FindModule(struct dl_phdr_info* info, size_t, void* data) {
  auto* m = static_cast<ModuleLookup*>(data);
  const uint8_t* hdr = nullptr;
  bool contains = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && m->pc >= start && m->pc < start + ph.p_memsz) contains = true;
    if (ph.p_type == PT_GNU_EH_FRAME) hdr = reinterpret_cast<const uint8_t*>(start);
  }
  if (!contains) return 0;
  m->eh_frame_hdr = hdr;
  return 1;
}

// The rule at pc (a return address minus one: inside the call).
Rule ComputeRule(uintptr_t pc) {
  ModuleLookup m{pc};
  if (!dl_iterate_phdr(FindModule, &m) || !m.eh_frame_hdr) return Rule::Unsupported();
  const uint8_t* hdr = m.eh_frame_hdr;
  if (hdr[0] != 1 || hdr[3] != (kPeDatarel | kPeSdata4)) return Rule::Unsupported();
  Reader r{hdr + 4, hdr + 4 + 16};
  r.Pointer(hdr[1], 0);  // eh_frame_ptr
  uint64_t count = r.Pointer(hdr[2], 0);
  if (!r.ok) return Rule::Unsupported();
  // The search table: sorted (initial location, FDE) pairs, relative to hdr.
  const int32_t* table = reinterpret_cast<const int32_t*>(r.p);
  auto base = reinterpret_cast<intptr_t>(hdr);
  intptr_t target = static_cast<intptr_t>(pc);
  uint64_t lo = 0, hi = count;
  while (lo < hi) {
    uint64_t mid = (lo + hi) / 2;
    if (base + table[2 * mid] <= target) lo = mid + 1; else hi = mid;
  }
  if (lo == 0) return Rule::Unsupported();
  const uint8_t* fde = reinterpret_cast<const uint8_t*>(base + table[2 * (lo - 1) + 1]);

  Reader f{fde, fde + 8};
  uint32_t length = f.Fixed<uint32_t>();
  if (length == 0 || length == 0xffffffff) return Rule::Unsupported();
  f.end = fde + 4 + length;
  const uint8_t* cie_pointer_at = f.p;
  uint32_t cie_offset = f.Fixed<uint32_t>();
  Cie cie;
  if (!ParseCie(cie_pointer_at - cie_offset, &cie) || cie.signal_frame) return Rule::Unsupported();
  uint64_t start = f.Pointer(cie.fde_encoding, 0);
  uint64_t range = f.Pointer(static_cast<uint8_t>(cie.fde_encoding & 0x0f), 0);
  if (!f.ok || pc < start || pc >= start + range) return Rule::Unsupported();
  if (cie.has_augmentation_data) f.p += f.Uleb();
  if (!f.ok || f.p > f.end) return Rule::Unsupported();

  Row initial;
  Execute(cie.instructions, cie.end, cie, start, ~uint64_t{0}, initial, &initial);
  Row row = initial;
  Execute(f.p, f.end, cie, start, pc, initial, &row);

  Rule rule;
  rule.flags = Rule::kValid;
  if (row.unsupported || (row.cfa_reg != kRegSp && row.cfa_reg != kRegBp)) return Rule::Unsupported();
  if (row.ra_undefined) {
    rule.flags |= Rule::kOutermost;
    return rule;
  }
  if (!row.ra_saved || row.ra_offset < -128 || row.ra_offset > 127 ||
      row.cfa_offset < INT32_MIN || row.cfa_offset > INT32_MAX ||
      (row.bp_saved && (row.bp_offset < INT16_MIN || row.bp_offset > INT16_MAX)))
    return Rule::Unsupported();
  if (row.cfa_reg == kRegBp) rule.flags |= Rule::kCfaFromBp;
  rule.cfa_offset = static_cast<int32_t>(row.cfa_offset);
  rule.ra_offset = static_cast<int8_t>(row.ra_offset);
  if (row.bp_saved) {
    rule.flags |= Rule::kBpSaved;
    rule.bp_offset = static_cast<int16_t>(row.bp_offset);
  }
  return rule;
}

// ---- The cache -------------------------------------------------------------------

struct Slot {
  std::atomic<uint64_t> pc;
  std::atomic<uint64_t> rule;
};
constexpr uint32_t kSlots = 1u << 16;  // 1 MiB
constexpr int kProbes = 8;
Slot* g_slots = nullptr;

uint32_t SlotOf(uintptr_t pc) {
  return static_cast<uint32_t>((pc * 0x9E3779B97F4A7C15ull) >> 48) & (kSlots - 1);
}

Rule RuleAt(uintptr_t pc) {
  uint32_t slot = SlotOf(pc);
  for (int i = 0; i < kProbes; ++i, slot = (slot + 1) & (kSlots - 1)) {
    Slot& s = g_slots[slot];
    uint64_t key = s.pc.load(std::memory_order_acquire);
    if (key == pc) {
      uint64_t packed = s.rule.load(std::memory_order_acquire);
      if (packed) return Rule::Unpack(packed);
      break;  // being filled by another thread: compute it here too
    }
    if (key == 0) {
      Rule rule = ComputeRule(pc);
      uint64_t expected = 0;
      if (s.pc.compare_exchange_strong(expected, pc, std::memory_order_acq_rel))
        s.rule.store(rule.Pack(), std::memory_order_release);
      return rule;
    }
  }
  return ComputeRule(pc);  // the neighbourhood is full: no caching
}

// ---- The last walk ---------------------------------------------------------------

// A program allocates from the same outer frames again and again: its main
// loop, the interpreter's evaluation loop. The walk is a function of the
// first frame's registers and of the stack words it reads, so when it
// reaches a frame whose (ip, sp, rbp) the thread's last walk also reached,
// and every word that walk read from there on still holds what it read,
// the rest of the stack is the last walk's: checking a word costs a load
// and a compare, where unwinding a frame costs a rule look-up.
struct WalkFrame {
  uintptr_t ip, sp, rbp;     // registers when the walk reached the frame
  const uintptr_t* ra_at;    // where the caller's ip was read; null: not read
  const uintptr_t* bp_at;    // where the caller's rbp was read; null: kept
  uintptr_t next_ip, next_rbp;
  // Whether the walk from here on used this frame's rbp (a CFA from rbp
  // before rbp was reloaded). Code without frame pointers uses rbp as any
  // register; its value there need not match.
  bool rbp_used;
  bool cfa_from_bp;
};
constexpr int kMemoFrames = 72;  // the depth kept (64) and a few of the shim's; thread-local: 5 KiB
constexpr int kMatchWithin = 8;  // frames from the top a match is tried at (on the program's stack)
struct WalkMemo {
  int count = 0;
  bool truncated = false;  // the walk stopped at the depth limit
  uint32_t generation = 0;
  WalkFrame frames[kMemoFrames];
};
std::atomic<uint32_t> g_generation{1};  // moves when code is unloaded
#ifndef PAGEWASTE_LOADED_LATE
thread_local WalkMemo t_memo __attribute__((tls_model("initial-exec")));
#endif

// Sets rbp_used of frames [0, end), from the frame at end on.
[[maybe_unused]] void MarkRbpUse(WalkMemo* memo, int end) {
  bool used = end < memo->count && memo->frames[end].rbp_used;
  for (int m = end - 1; m >= 0; --m) {
    WalkFrame& f = memo->frames[m];
    used = f.cfa_from_bp || (!f.bp_at && used);
    f.rbp_used = used;
  }
}

[[maybe_unused]] bool StillHolds(const WalkMemo& memo, int from) {
  for (int m = from; m < memo.count; ++m) {
    const WalkFrame& f = memo.frames[m];
    if (f.ra_at && *f.ra_at != f.next_ip) return false;
    if (f.bp_at && *f.bp_at != f.next_rbp) return false;
  }
  return true;
}

}  // namespace

bool InitFastUnwind() {
  g_slots = static_cast<Slot*>(producer::RawReserve(sizeof(Slot) * kSlots));
  return g_slots != nullptr;
}

void ForgetUnwindRules() {
  g_generation.fetch_add(1, std::memory_order_relaxed);
  if (!g_slots) return;
  for (uint32_t i = 0; i < kSlots; ++i) {
    g_slots[i].rule.store(0, std::memory_order_relaxed);
    g_slots[i].pc.store(0, std::memory_order_release);
  }
}

// The shim's frames keep frame pointers: follows them from bp (the
// caller's frame) to the first return address outside the shim. That
// frame's CFA and saved rbp are where the program's registers were at the
// call.
static bool FindProgramFrame(uintptr_t* bp, uintptr_t skip_start, uintptr_t skip_end,
                             uintptr_t* ip, uintptr_t* sp, uintptr_t* rbp) {
  for (int i = 0;; ++i) {
    if (i == 32 || !bp) return false;
    *ip = bp[1];
    *sp = reinterpret_cast<uintptr_t>(bp + 2);
    *rbp = bp[0];
    if (*ip < skip_start || *ip >= skip_end) return true;
    bp = reinterpret_cast<uintptr_t*>(*rbp);
  }
}

#ifdef PAGEWASTE_LOADED_LATE
// A library loaded late (attach's feed, inject/) has too little static TLS
// for the memo of the last walk: every walk is whole.
__attribute__((noinline)) int FastBacktrace(uintptr_t* ips, int max, uintptr_t skip_start,
                                            uintptr_t skip_end) {
  uintptr_t ip = 0, sp = 0, rbp = 0;
  if (!g_slots || !FindProgramFrame(static_cast<uintptr_t*>(__builtin_frame_address(0)),
                                    skip_start, skip_end, &ip, &sp, &rbp))
    return -1;
  int n = 0;
  for (int walked = 0; n < max && walked < kMemoFrames; ++walked) {
    if (ip < skip_start || ip >= skip_end) ips[n++] = ip;
    Rule rule = RuleAt(ip - 1);
    if (rule.flags & Rule::kUnsupported) return -1;
    if (rule.flags & Rule::kOutermost) break;
    uintptr_t cfa = ((rule.flags & Rule::kCfaFromBp) ? rbp : sp) +
                    static_cast<intptr_t>(rule.cfa_offset);
    if (cfa <= sp || (cfa & 7) || cfa - sp > (256u << 20)) return -1;
    ip = *reinterpret_cast<const uintptr_t*>(cfa + rule.ra_offset);
    if (rule.flags & Rule::kBpSaved)
      rbp = *reinterpret_cast<const uintptr_t*>(cfa + rule.bp_offset);
    sp = cfa;
    if (ip == 0) break;
  }
  return n;
}
#else
__attribute__((noinline)) int FastBacktrace(uintptr_t* ips, int max, uintptr_t skip_start,
                                            uintptr_t skip_end) {
  uintptr_t ip = 0, sp = 0, rbp = 0;
  if (!g_slots || !FindProgramFrame(static_cast<uintptr_t*>(__builtin_frame_address(0)),
                                    skip_start, skip_end, &ip, &sp, &rbp))
    return -1;
  WalkMemo& memo = t_memo;
  uint32_t generation = g_generation.load(std::memory_order_relaxed);
  bool can_match = memo.generation == generation && memo.count > 0;
  WalkFrame top[kMatchWithin];
  int n = 0;
  int walked = 0;
  int j = 0;  // the last walk's frames below the current sp are passed
  auto keep = [&](uintptr_t frame_ip) {
    // The shim's frames further down (its stand-in for main) are left out.
    if (frame_ip < skip_start || frame_ip >= skip_end) ips[n++] = frame_ip;
  };
  for (;;) {
    if (n == max || walked == kMemoFrames) break;
    if (can_match && walked < kMatchWithin) {
      while (j < memo.count && memo.frames[j].sp < sp) ++j;
      const WalkFrame* old = j < memo.count ? &memo.frames[j] : nullptr;
      if (old && old->sp == sp && old->ip == ip && (!old->rbp_used || old->rbp == rbp) &&
          (!memo.truncated || j == walked) && StillHolds(memo, j)) {
        for (int m = j; m < memo.count && n < max; ++m) keep(memo.frames[m].ip);
        int tail = memo.count - j;
        if (walked + tail > kMemoFrames) {
          memo.count = 0;
          return n;
        }
        if (walked == 0 && j == 0) return n;  // the same stack: the memo stands
        if (walked != j) memmove(&memo.frames[walked], &memo.frames[j], tail * sizeof(WalkFrame));
        memcpy(memo.frames, top, walked * sizeof(WalkFrame));
        memo.count = walked + tail;
        MarkRbpUse(&memo, walked);
        return n;
      }
    }
    WalkFrame& f = walked < kMatchWithin ? top[walked] : memo.frames[walked];
    f = {ip, sp, rbp, nullptr, nullptr, 0, 0, false, false};
    ++walked;
    keep(ip);
    Rule rule = RuleAt(ip - 1);
    if (rule.flags & Rule::kUnsupported) {
      memo.count = 0;
      return -1;
    }
    if (rule.flags & Rule::kOutermost) break;
    f.cfa_from_bp = rule.flags & Rule::kCfaFromBp;
    uintptr_t cfa = (f.cfa_from_bp ? rbp : sp) + static_cast<intptr_t>(rule.cfa_offset);
    // Frames only ever lie further up the stack, and not absurdly far.
    if (cfa <= sp || (cfa & 7) || cfa - sp > (256u << 20)) {
      memo.count = 0;
      return -1;
    }
    f.ra_at = reinterpret_cast<const uintptr_t*>(cfa + rule.ra_offset);
    ip = f.next_ip = *f.ra_at;
    if (rule.flags & Rule::kBpSaved) {
      f.bp_at = reinterpret_cast<const uintptr_t*>(cfa + rule.bp_offset);
      rbp = *f.bp_at;
    }
    f.next_rbp = rbp;
    sp = cfa;
    if (ip == 0) break;
  }
  // A whole walk: it is the one to compare the next with.
  memcpy(memo.frames, top, (walked < kMatchWithin ? walked : kMatchWithin) * sizeof(WalkFrame));
  memo.count = walked;
  MarkRbpUse(&memo, walked);
  memo.truncated = n == max || walked == kMemoFrames;
  memo.generation = generation;
  return n;
}

#endif

}  // namespace pagewaste::shim
