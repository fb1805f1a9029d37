// Symbols kept between runs, a file per module (symbol_store.h).
#include "symbol_store.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "elf/elf_headers.h"
#include "format/little_endian.h"
#include "io/output_file.h"

namespace pagewaste {
namespace {

constexpr char kMagic[] = "pagewaste symbols 1\n";
constexpr size_t kMagicBytes = sizeof kMagic - 1;
// No module's symbols come near this; a larger file is not ours.
constexpr uint64_t kMaxFileBytes = 64u << 20;

// Build ids name files: hex only, as ReadBuildId writes them.
bool IsBuildId(const std::string& id) {
  if (id.size() < 2 || id.size() > 128) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// A directory we may keep the store in: ours, and (when private is asked)
// closed to everyone else. Follows no link at its last component.
int OpenOwnDirectory(const std::string& path, bool require_private) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0) return -1;
  if (fstat(fd, &st) != 0 || st.st_uid != geteuid() ||
      (require_private && (st.st_mode & 077) != 0)) {
    close(fd);
    return -1;
  }
  return fd;
}

bool ReadWhole(int fd, std::string* out) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
      static_cast<uint64_t>(st.st_size) > kMaxFileBytes)
    return false;
  out->resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out->size()) {
    ssize_t n = read(fd, out->data() + done, out->size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

std::unique_ptr<SymbolStore> SymbolStore::FromEnvironment() {
  const char* named = getenv("PAGEWASTE_SYMBOL_CACHE");
  std::string directory;
  if (named && *named) {
    if (strcmp(named, "off") == 0) return nullptr;
    directory = named;
  } else {
    // The user's cache directory must be theirs (not, say, another user's
    // home under sudo), and what we make in it ours.
    const char* xdg = getenv("XDG_CACHE_HOME");
    const char* home = getenv("HOME");
    std::string base;
    if (xdg && xdg[0] == '/') {
      base = xdg;
    } else if (home && home[0] == '/') {
      base = std::string(home) + "/.cache";
    } else {
      return nullptr;
    }
    mkdir(base.c_str(), 0700);
    struct stat st;
    if (stat(base.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
      return nullptr;
    std::string ours = base + "/pagewaste";
    mkdir(ours.c_str(), 0700);
    int fd = OpenOwnDirectory(ours, false);
    if (fd < 0) return nullptr;
    close(fd);
    directory = ours + "/symbols";
  }
  std::string identity = ptrace::ReadBuildId("/proc/self/exe");
  if (identity.empty()) return nullptr;  // no way to tell its files from another build's
  return Open(directory, identity);
}

std::unique_ptr<SymbolStore> SymbolStore::Open(const std::string& directory,
                                               const std::string& build_identity) {
  mkdir(directory.c_str(), 0700);
  int fd = OpenOwnDirectory(directory, true);
  if (fd < 0) return nullptr;
  return std::unique_ptr<SymbolStore>(new SymbolStore(fd, build_identity));
}

SymbolStore::SymbolStore(int directory_fd, std::string build_identity)
    : directory_fd_(directory_fd), build_identity_(std::move(build_identity)) {}

SymbolStore::~SymbolStore() { close(directory_fd_); }

namespace {

// A file's identity and time ("none" when it is not there).
std::string FileIdentity(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return "none";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
         std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

}  // namespace

std::string SymbolStore::Fingerprint(const SymbolModule& module) const {
  // The build id names the code, not what debug information the file
  // carries: a copy stripped of it keeps the same id.
  std::string debug_file = "/usr/lib/debug/.build-id/" + module.build_id.substr(0, 2) + "/" +
                           module.build_id.substr(2) + ".debug";
  return "pagewaste " + build_identity_ + "\nmodule " + FileIdentity(module.path) + "\ndebug " +
         FileIdentity(debug_file) + "\n";
}

ModuleFrames SymbolStore::Load(const SymbolModule& module) const {
  ModuleFrames frames;
  if (!IsBuildId(module.build_id)) return frames;
  int fd = openat(directory_fd_, module.build_id.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return frames;
  std::string bytes;
  bool read = ReadWhole(fd, &bytes);
  close(fd);
  std::string fingerprint = Fingerprint(module);
  size_t records = kMagicBytes + 4 + fingerprint.size();
  if (!read || bytes.size() < records || bytes.compare(0, kMagicBytes, kMagic) != 0 ||
      GetLE(reinterpret_cast<const uint8_t*>(bytes.data()) + kMagicBytes, 4) !=
          fingerprint.size() ||
      bytes.compare(kMagicBytes + 4, fingerprint.size(), fingerprint) != 0)
    return frames;
  // One module, this one; at another path (the same library by another
  // name) its frames are given this one's.
  std::string stored_path;
  int modules = 0;
  uint64_t named_bytes = 0;
  std::string why;
  bool whole = DecodeSymbolRecords(
      reinterpret_cast<const uint8_t*>(bytes.data()) + records, bytes.size() - records,
      [&](const SymbolModule& m) {
        modules += m.build_id == module.build_id ? 1 : 2;
        stored_path = m.path;
      },
      [&](const SymbolizedAddress& a) {
        std::vector<SymbolFrame>& at = frames[a.address] = a.frames;
        for (SymbolFrame& f : at)
          if (f.module == stored_path) f.module = module.path;
      },
      &named_bytes, &why);
  if (!whole || modules != 1) frames.clear();
  return frames;
}

bool SymbolStore::Save(const SymbolModule& module, const ModuleFrames& frames) const {
  if (!IsBuildId(module.build_id)) return false;
  std::vector<SymbolizedAddress> addresses;
  addresses.reserve(frames.size());
  for (const auto& [offset, of_offset] : frames) addresses.push_back({offset, of_offset});
  std::vector<uint8_t> records = EncodeSymbolRecords({module}, addresses);
  std::string fingerprint = Fingerprint(module);
  std::string bytes(kMagic, kMagicBytes);
  uint8_t length[4];
  PutLE(length, fingerprint.size(), 4);
  bytes.append(reinterpret_cast<const char*>(length), 4);
  bytes += fingerprint;
  bytes.append(reinterpret_cast<const char*>(records.data()), records.size());
  if (bytes.size() > kMaxFileBytes) return false;

  // A new private file beside the module's, renamed over it once whole.
  uint64_t nonce = 0;
  if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce) nonce = static_cast<uint64_t>(getpid());
  std::string temp = "." + module.build_id + "." + std::to_string(nonce);
  int fd = openat(directory_fd_, temp.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = WriteAll(fd, bytes);
  ok = close(fd) == 0 && ok;
  ok = ok && renameat(directory_fd_, temp.c_str(), directory_fd_, module.build_id.c_str()) == 0;
  if (!ok) unlinkat(directory_fd_, temp.c_str(), 0);
  return ok;
}

}  // namespace pagewaste
