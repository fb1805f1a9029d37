// The symbol section of a trace, encoded and decoded (symbol_section.h).
#include "symbol_section.h"

#include <zstd.h>

#include <algorithm>
#include <memory>
#include <unordered_map>

#include "format/expansion_limit.h"
#include "format/format.h"
#include "format/little_endian.h"
#include "format/varint.h"

namespace pagewaste {
namespace {

using format::SymbolRecordType;

// Plain records, split into pieces that each expand to well under the
// reader's limit.
constexpr size_t kPieceBytes = 16u << 20;

class Encoder {
 public:
  uint64_t String(const std::string& s) {
    if (s.empty()) return 0;
    auto [it, fresh] = ids_.emplace(s, ids_.size() + 1);
    if (fresh) {
      Byte(static_cast<uint8_t>(SymbolRecordType::kString));
      Number(s.size());
      out_.insert(out_.end(), s.begin(), s.end());
    }
    return it->second;
  }
  void Byte(uint8_t b) { out_.push_back(b); }
  void Number(uint64_t v) {
    uint8_t buf[kMaxVarintBytes];
    out_.insert(out_.end(), buf, buf + EncodeVarint(v, buf));
  }
  std::vector<uint8_t>& bytes() { return out_; }

 private:
  std::unordered_map<std::string, uint64_t> ids_;
  std::vector<uint8_t> out_;
};

void AppendChunk(const std::vector<uint8_t>& plain, std::vector<uint8_t>* out) {
  std::vector<uint8_t> packed(ZSTD_compressBound(plain.size()));
  size_t n = ZSTD_compress(packed.data(), packed.size(), plain.data(), plain.size(), 9);
  if (ZSTD_isError(n)) return;
  if (size_t pad = ExpansionPadding(4 + n, plain.size())) {
    packed.resize(n + pad);
    WriteSkippableFrame(packed.data() + n, pad);
    n += pad;
  }
  uint8_t prefix[format::kChunkPrefixSize + 4];
  PutLE(prefix, n + 4, 4);
  PutLE(prefix + 4, format::kChunkFinished | format::kChunkSymbols, 4);
  PutLE(prefix + 8, plain.size(), 4);
  out->insert(out->end(), prefix, prefix + sizeof prefix);
  out->insert(out->end(), packed.begin(), packed.begin() + static_cast<ptrdiff_t>(n));
}

struct Cursor {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;
  uint64_t Number() {
    uint64_t v = 0;
    if (ok && !DecodeVarint(&p, end, &v)) ok = false;
    return ok ? v : 0;
  }
  uint8_t Byte() {
    if (!ok || p >= end) return ok = false, 0;
    return *p++;
  }
};

}  // namespace

namespace {

// The records of modules and addresses, in pieces of about piece_bytes
// (strings are numbered within a piece, so that each decodes alone).
void EncodeRecords(const std::vector<SymbolModule>& modules,
                   const std::vector<SymbolizedAddress>& addresses, size_t piece_bytes,
                   const std::function<void(const std::vector<uint8_t>&)>& on_piece) {
  auto encoder = std::make_unique<Encoder>();
  auto flush = [&] {
    if (!encoder->bytes().empty()) on_piece(encoder->bytes());
    encoder = std::make_unique<Encoder>();
  };
  for (const SymbolModule& m : modules) {
    uint64_t path = encoder->String(m.path), build_id = encoder->String(m.build_id);
    encoder->Byte(static_cast<uint8_t>(SymbolRecordType::kModule));
    encoder->Number(path);
    encoder->Number(build_id);
  }
  for (const SymbolizedAddress& a : addresses) {
    if (encoder->bytes().size() > piece_bytes) flush();
    size_t count = std::min<size_t>(a.frames.size(), format::kMaxSymbolFrames);
    struct Ids {
      uint64_t function, file, module;
    };
    std::vector<Ids> ids;
    for (size_t i = 0; i < count; ++i)
      ids.push_back({encoder->String(a.frames[i].function), encoder->String(a.frames[i].file),
                     encoder->String(a.frames[i].module)});
    encoder->Byte(static_cast<uint8_t>(SymbolRecordType::kAddress));
    encoder->Number(a.address);
    encoder->Number(count);
    for (size_t i = 0; i < count; ++i) {
      const SymbolFrame& f = a.frames[i];
      encoder->Number(ids[i].function);
      encoder->Number(ids[i].file);
      encoder->Number(f.line);
      encoder->Number(ids[i].module);
      encoder->Number(f.module_offset);
      encoder->Byte(f.inlined ? 1 : 0);
    }
  }
  flush();
}

}  // namespace

std::vector<uint8_t> EncodeSymbolSection(const std::vector<SymbolModule>& modules,
                                         const std::vector<SymbolizedAddress>& addresses) {
  std::vector<uint8_t> out;
  EncodeRecords(modules, addresses, kPieceBytes,
                [&](const std::vector<uint8_t>& piece) { AppendChunk(piece, &out); });
  return out;
}

std::vector<uint8_t> EncodeSymbolRecords(const std::vector<SymbolModule>& modules,
                                         const std::vector<SymbolizedAddress>& addresses) {
  std::vector<uint8_t> out;
  EncodeRecords(modules, addresses, SIZE_MAX,
                [&](const std::vector<uint8_t>& piece) { out = piece; });
  return out;
}

bool DecodeSymbolRecords(const uint8_t* p, size_t size,
                         const std::function<void(const SymbolModule&)>& on_module,
                         const std::function<void(const SymbolizedAddress&)>& on_address,
                         uint64_t* named_bytes, std::string* why) {
  Cursor c{p, p + size};
  std::vector<std::string> strings(1);  // 0: the empty string
  auto string = [&](uint64_t id) -> const std::string& {
    if (id >= strings.size()) c.ok = false;
    return strings[c.ok ? id : 0];
  };
  SymbolizedAddress address;
  while (c.ok && c.p < c.end) {
    uint8_t type = c.Byte();
    switch (static_cast<SymbolRecordType>(type)) {
      case SymbolRecordType::kString: {
        uint64_t length = c.Number();
        if (length > format::kMaxString || length > static_cast<uint64_t>(c.end - c.p)) {
          c.ok = false;
          break;
        }
        strings.emplace_back(reinterpret_cast<const char*>(c.p), length);
        c.p += length;
        break;
      }
      case SymbolRecordType::kModule: {
        SymbolModule m;
        m.path = string(c.Number());
        m.build_id = string(c.Number());
        if (c.ok) on_module(m);
        break;
      }
      case SymbolRecordType::kAddress: {
        address.address = c.Number();
        uint64_t count = c.Number();
        if (count > format::kMaxSymbolFrames) c.ok = false;
        address.frames.clear();
        for (uint64_t i = 0; c.ok && i < count; ++i) {
          SymbolFrame f;
          f.function = string(c.Number());
          f.file = string(c.Number());
          f.line = static_cast<uint32_t>(c.Number());
          f.module = string(c.Number());
          f.module_offset = c.Number();
          f.inlined = c.Byte() != 0;
          *named_bytes += f.function.size() + f.file.size() + f.module.size();
          address.frames.push_back(std::move(f));
        }
        if (*named_bytes > format::kMaxSymbolNameBytes) {
          *why = "a symbol section naming more than " +
                 std::to_string(format::kMaxSymbolNameBytes >> 20) + " MiB in its frames";
          return false;
        }
        if (c.ok) on_address(address);
        break;
      }
      default:
        *why = "unknown symbol record type " + std::to_string(type);
        return false;
    }
  }
  if (!c.ok) *why = "undecodable symbol record";
  return c.ok;
}

}  // namespace pagewaste
