#include "agent-worker/apply.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <set>

#include "agent-worker/exec_confine.h"
#include "agent-worker/exec_runner.h"
#include "agent-worker/fs_ops.h"
#include "agent-worker/scrub.h"
#include "common/log.h"
#include "common/secret_ref.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/utf8_text.h"
#include "vocab/hex.h"

namespace vigo::worker {
namespace {

using sandbox::SecretBuffer;

constexpr std::string_view kSecretFilePlaceholder = "{{ .SecretFile }}";
constexpr size_t kMaxExistingFileBytes = size_t{16} << 20;
constexpr size_t kMessageOutputBytes = 1024;

v1::ResourceResult MakeResult(const v1::Resource& r, std::string_view status,
                              std::string_view action, std::string message) {
  v1::ResourceResult res;
  res.set_name(r.name());
  res.set_type(r.type());
  res.set_status(std::string(status));
  res.set_action(std::string(action));
  res.set_message(std::move(message));
  return res;
}

v1::ResourceResult Failed(const v1::Resource& r, const absl::Status& s) {
  return MakeResult(r, "failed", "none", std::string(s.message()));
}

// A failure of a file-system step on a target: the message names the
// resource as well as the path (a refused link, a missing permission).
v1::ResourceResult FailedOn(const v1::Resource& r, const absl::Status& s) {
  return MakeResult(r, "failed", "none", StrCat("resource '", r.name(), "': ", s.message()));
}

// The mode (default when the resource sets none), owner and group a file or
// directory resource asks for; errors name the bad field.
struct Ownership {
  mode_t mode;
  uid_t uid;
  gid_t gid;
};
absl::StatusOr<Ownership> ResolveOwnership(const v1::Resource& r, mode_t default_mode) {
  Ownership o{default_mode, 0, 0};
  if (!r.mode().empty()) {
    VIGO_ASSIGN_OR_RETURN(o.mode, ParseMode(r.mode()));
  }
  VIGO_ASSIGN_OR_RETURN(o.uid, LookupUser(r.owner()));
  VIGO_ASSIGN_OR_RETURN(o.gid, LookupGroup(r.group()));
  return o;
}

std::string OctalMode(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(m));
  return buf;
}

constexpr std::string_view kSecretDirPrefix = "vigo-secret.";

// Overwrites <dir>/secret with zeros and removes it, the lock file and the
// directory, all relative to `parent_fd` and never through a link: the
// directory may belong to the resource's owner (an unprivileged user), who
// could swap `secret` for a symlink, a hard link to a file of theirs, or a
// FIFO to hang the worker. Only a regular file with one link, owned by the
// directory's owner, is zeroed. Returns whether the directory is gone.
bool WipeSecretDirAt(int parent_fd, const std::string& name) {
  int dir_fd = ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0) return false;
  struct stat dst;
  if (::fstat(dir_fd, &dst) != 0) {
    ::close(dir_fd);
    return false;
  }
  int fd = ::openat(dir_fd, "secret", O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd >= 0) {
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
        st.st_uid == dst.st_uid && st.st_size > 0) {
      std::vector<uint8_t> zeros(static_cast<size_t>(st.st_size), 0);
      (void)!::write(fd, zeros.data(), zeros.size());
      ::fsync(fd);
    }
    ::close(fd);
  }
  ::unlinkat(dir_fd, "secret", 0);
  ::unlinkat(dir_fd, "lock", 0);
  ::close(dir_fd);
  return ::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) == 0;
}

// A private 0700 directory "<base>/vigo-secret.XXXXXX" holding one 0600
// file `secret` and a file `lock` that this worker holds an exclusive flock
// on while the directory is in use; wiped and removed on scope exit. A
// killed worker's lock is released by the kernel, which is how a later
// worker's sweep tells a dead directory from a live one: pids cannot tell
// (every worker is PID 1 of its own PID namespace).
class SecretFile {
 public:
  ~SecretFile() {
    if (parent_fd_ >= 0) {
      WipeSecretDirAt(parent_fd_, name_);
      ::close(parent_fd_);
    }
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }
  // `base_fd` is the directory to create it in (borrowed), `base_dir` its
  // path, handed to the command.
  absl::Status Create(int base_fd, const std::string& base_dir, std::span<const uint8_t> value,
                      uid_t uid, gid_t gid) {
    // mkdtemp, relative to the directory's fd.
    static constexpr char kChars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::string name;
    for (int attempt = 0; attempt < 100 && name.empty(); ++attempt) {
      uint8_t rnd[6];
      if (RAND_bytes(rnd, sizeof(rnd)) != 1) break;
      std::string candidate(kSecretDirPrefix);
      for (uint8_t b : rnd) candidate.push_back(kChars[b % (sizeof(kChars) - 1)]);
      if (::mkdirat(base_fd, candidate.c_str(), 0700) == 0) {
        name = candidate;
      } else if (errno != EEXIST) {
        break;
      }
    }
    if (name.empty()) {
      return absl::InternalError(StrCat("cannot create a secret_file directory in ", base_dir));
    }
    name_ = name;
    parent_fd_ = ::fcntl(base_fd, F_DUPFD_CLOEXEC, 0);
    if (parent_fd_ < 0) return absl::InternalError(StrCat("cannot open ", base_dir));
    const std::string dir = StrCat(base_dir == "/" ? "" : base_dir, "/", name);
    sandbox::UniqueFd dir_fd(
        ::openat(parent_fd_, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir_fd) return absl::InternalError(StrCat("cannot open ", dir));
    lock_fd_ =
        ::openat(dir_fd.get(), "lock", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      return absl::InternalError(StrCat("cannot lock the secret_file directory in ", base_dir));
    }
    path_ = StrCat(dir, "/secret");
    if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1))) {
      (void)!::fchown(dir_fd.get(), uid, gid);
    }
    VIGO_ASSIGN_OR_RETURN(PreparedWrite w,
                          PrepareWriteAt(std::move(dir_fd), dir, "secret", value, 0600, uid, gid));
    if (::fsync(w.fd.get()) != 0) return absl::InternalError(StrCat("fsync ", path_));
    return CommitWrite(w, nullptr);
  }
  const std::string& path() const { return path_; }

 private:
  int parent_fd_ = -1;
  int lock_fd_ = -1;
  std::string name_;
  std::string path_;
};

constexpr size_t kMaxPendingWrites = 128;

}  // namespace

struct ApplyEngine::Pending {
  PreparedWrite write;
  size_t result_index = 0;
  std::string name;
  v1::Resource resource;
};

ApplyEngine::~ApplyEngine() = default;

// Durability argument. A file this engine writes becomes visible under its
// target name only by CommitWrite (linkat of the O_TMPFILE inode, or rename
// of the 0600 named temp), and only after its inode is complete: owner and
// mode set before the first byte of content (PrepareWrite), every byte
// written, and the data made durable here (one syncfs(2) per file system for
// the whole batch; fsync of each file if syncfs fails). So after a crash at
// any point the target name holds either the old file or the complete new
// one with its final owner and mode, never a partial or wrong-mode file: an
// uncommitted anonymous inode vanishes, a named temp is never the target.
// After the links, each directory that received one (and the parent of each
// directory this apply created) is fsynced, so the new names themselves are
// durable. Only then does a result say "changed": a file whose directory
// cannot be fsynced is reported failed, and the results (hence the run's
// report) are sent only after the last flush. Batching changes how many
// syscalls this takes (one syncfs per batch instead of one fsync per file and
// directory), not the order: no file is linked before its data is durable.
//
// syncfs reports writeback errors of the whole file system since the fd it
// is given was opened (Linux >= 5.8, errseq): that fd is the first pending
// file's, opened before any write of the batch.
void ApplyEngine::FlushWrites(std::vector<v1::ResourceResult>* results,
                              std::set<std::string, std::less<>>* not_converged) {
  if (pending_.empty() && dirs_to_sync_.empty()) return;
  // Make every pending file's data durable at once: one syncfs per file
  // system (fsync each file if that fails), then make them visible.
  std::set<dev_t> synced;
  bool all_ok = true;
  for (const auto& p : pending_) {
    struct stat st;
    if (::fstat(p->write.fd.get(), &st) != 0) {
      all_ok = false;
      break;
    }
    if (synced.insert(st.st_dev).second && ::syncfs(p->write.fd.get()) != 0) {
      all_ok = false;
      break;
    }
  }
  for (auto& p : pending_) {
    absl::Status s;
    if (!all_ok && ::fsync(p->write.fd.get()) != 0) {
      s = absl::InternalError(StrCat("fsync ", p->write.path, ": ", std::strerror(errno)));
    }
    if (s.ok()) s = CommitWrite(p->write, &dirs_to_sync_);
    if (!s.ok()) {
      (*results)[p->result_index] = Failed(p->resource, s);
      not_converged->insert(p->name);
    }
  }
  // The new names, and the directories created on their way, made durable.
  std::set<std::string> failed_dirs;
  if (absl::Status s = SyncDirs(&dirs_to_sync_, &failed_dirs); !s.ok()) {
    Log(LogLevel::kWarn, "directory fsync failed", {{"error", s}});
    for (auto& p : pending_) {
      if (!p->write.committed) continue;
      for (const std::string& d : failed_dirs) {
        if (p->write.dir == d || p->write.dir.rfind(StrCat(d, "/"), 0) == 0) {
          (*results)[p->result_index] = Failed(
              p->resource,
              absl::InternalError(StrCat("written, but not durable: ", std::string(s.message()))));
          not_converged->insert(p->name);
          break;
        }
      }
    }
  }
  pending_.clear();  // uncommitted temp files are removed here
}

absl::Status MapValueSource::Put(std::string path, std::span<const uint8_t> value) {
  VIGO_ASSIGN_OR_RETURN(SecretBuffer b, SecretBuffer::CopyFrom(value));
  values_[std::move(path)] = std::move(b);
  return absl::OkStatus();
}

absl::StatusOr<const SecretBuffer*> MapValueSource::Get(std::string_view path) {
  auto it = values_.find(path);
  if (it == values_.end()) return absl::NotFoundError(StrCat("no value for secret ", path));
  return &it->second;
}

std::vector<const SecretBuffer*> MapValueSource::Resolved() const {
  std::vector<const SecretBuffer*> out;
  for (const auto& [k, v] : values_) out.push_back(&v);
  return out;
}

int SweepStaleSecretFiles(const std::string& dir) {
  sandbox::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return 0;
  return SweepStaleSecretFilesAt(fd.get());
}

int SweepStaleSecretFilesAt(int base_fd) {
  int removed = 0;
  int dir_fd = ::fcntl(base_fd, F_DUPFD_CLOEXEC, 0);
  if (dir_fd < 0) return 0;
  DIR* d = ::fdopendir(::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0));
  if (d == nullptr) {
    ::close(dir_fd);
    return 0;
  }
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.compare(0, kSecretDirPrefix.size(), kSecretDirPrefix) != 0) continue;
    // A real directory only: a symlink named like one is never followed.
    struct stat st;
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
      continue;
    }
    int sub = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) continue;
    int lock = ::openat(sub, "lock", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    ::close(sub);
    bool live = false;
    if (lock >= 0) {
      struct stat lst;
      live = ::fstat(lock, &lst) == 0 && S_ISREG(lst.st_mode) &&
             ::flock(lock, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
      ::close(lock);
    }
    if (live) continue;  // its worker still holds the lock
    if (WipeSecretDirAt(dir_fd, name)) ++removed;
  }
  ::closedir(d);
  ::close(dir_fd);
  return removed;
}

ApplyEngine::ApplyEngine(ApplyOptions options) : options_(std::move(options)) {
  while (!options_.apply_root.empty() && options_.apply_root.back() == '/') {
    options_.apply_root.pop_back();
  }
  auto key = SecretBuffer::Create(32);
  if (key.ok()) {
    fingerprint_key_ = std::move(*key);
    if (RAND_bytes(fingerprint_key_.RevealMutable().data(), 32) != 1) fingerprint_key_.Clear();
  }
}

std::string ApplyEngine::Fingerprint(std::span<const uint8_t> bytes) const {
  if (fingerprint_key_.empty()) return "unavailable";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (HMAC(EVP_sha256(), fingerprint_key_.Reveal().data(),
           static_cast<int>(fingerprint_key_.size()), bytes.data(), bytes.size(), md,
           &md_len) == nullptr) {
    return "unavailable";
  }
  return vocab::Hex(std::span<const uint8_t>(md, 8));
}

absl::StatusOr<std::string> ApplyEngine::Rooted(std::string_view path,
                                                std::string_view what) const {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(StrCat(what, " '", path, "' is not an absolute path"));
  }
  if (path.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(StrCat(what, " contains a NUL byte"));
  }
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view seg = path.substr(i, j - i);
    if (seg == "..") {
      return absl::InvalidArgumentError(StrCat(what, " '", path, "' contains '..'"));
    }
    i = j + 1;
  }
  std::string p(path);
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return StrCat(options_.apply_root, p);
}

std::string ApplyEngine::Outcome(const std::vector<v1::ResourceResult>& results) {
  bool changed = false;
  for (const auto& r : results) {
    if (r.status() == "failed") return "failed";
    if (r.status() == "changed") changed = true;
  }
  return changed ? "changed" : "ok";
}

std::vector<v1::ResourceResult> ApplyEngine::Apply(const v1::PolicyBundle& bundle,
                                                   ValueSource& values) {
  std::vector<v1::ResourceResult> results;
  applied_ = &results;
  std::set<std::string, std::less<>> not_converged;  // failed or blocked
  bundle_refs_.assign(bundle.secret_refs().begin(), bundle.secret_refs().end());
  redaction_window_ = bundle.redaction_window();
  // The boundary every target resolves from (the operator's path itself is
  // trusted and followed; nothing below it is).
  const std::string root = options_.apply_root.empty() ? "/" : options_.apply_root;
  root_fd_ = sandbox::UniqueFd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  for (const v1::Resource& r : bundle.resources()) {
    std::string blocker;
    for (const std::string& dep : r.depends_on()) {
      if (not_converged.count(dep) > 0) {
        blocker = dep;
        break;
      }
    }
    // A command, or a dependent, may rely on earlier files being in place.
    bool depends_on_pending = false;
    for (const std::string& dep : r.depends_on()) {
      for (const auto& p : pending_) depends_on_pending |= (p->name == dep);
    }
    if (r.type() == "exec" || depends_on_pending || pending_.size() >= kMaxPendingWrites) {
      FlushWrites(&results, &not_converged);
    }
    for (const std::string& dep : r.depends_on()) {
      if (blocker.empty() && not_converged.count(dep) > 0) blocker = dep;
    }
    current_index_ = results.size();
    v1::ResourceResult res;
    if (!blocker.empty()) {
      res =
          MakeResult(r, "failed", "blocked", StrCat("dependency '", blocker, "' did not converge"));
    } else {
      res = ApplyOne(r, values);
    }
    if (res.status() == "failed") not_converged.insert(r.name());
    Log(res.status() == "failed" ? LogLevel::kWarn : LogLevel::kDebug, "resource applied",
        {{"name", r.name()},
         {"type", r.type()},
         {"status", res.status()},
         {"action", res.action()},
         {"detail", res.message()}});
    results.push_back(std::move(res));
  }
  FlushWrites(&results, &not_converged);
  applied_ = nullptr;
  return results;
}

void ApplyEngine::BeginExecs(const v1::PolicyBundle& bundle) {
  bundle_refs_.assign(bundle.secret_refs().begin(), bundle.secret_refs().end());
  redaction_window_ = bundle.redaction_window();
  const std::string root = options_.apply_root.empty() ? "/" : options_.apply_root;
  root_fd_ = sandbox::UniqueFd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

v1::ResourceResult ApplyEngine::ApplyOne(const v1::Resource& r, ValueSource& values) {
  if (r.type() == "file") return ApplyFile(r, values);
  if (r.type() == "directory") return ApplyDirectory(r);
  if (r.type() == "exec") {
    if (options_.exec_delegate) {
      static const std::vector<v1::ResourceResult> kNone;
      return options_.exec_delegate(r, applied_ != nullptr ? *applied_ : kNone);
    }
    return ApplyExec(r, values);
  }
  return MakeResult(r, "failed", "none", StrCat("unknown resource type '", r.type(), "'"));
}

absl::StatusOr<TargetPath> ApplyEngine::Target(std::string_view path, std::string_view what) const {
  if (!root_fd_) {
    return absl::FailedPreconditionError(
        StrCat("apply root ", options_.apply_root.empty() ? "/" : options_.apply_root,
               " cannot be opened"));
  }
  return ParseTargetPath(root_fd_.get(), options_.apply_root, path, what);
}

v1::ResourceResult ApplyEngine::ApplyFile(const v1::Resource& r, ValueSource& values) {
  auto t = Target(r.target_path(), "target_path");
  if (!t.ok()) return Failed(r, t.status());
  const std::string full = t->Full();
  // The parent as it is now: missing (nothing to inspect yet) or opened
  // without following a link anywhere on the way.
  sandbox::UniqueFd dir;
  FileState st;
  {
    auto d = OpenParentDir(*t, /*create=*/false);
    if (d.ok()) {
      dir = std::move(*d);
      auto s = InspectAt(dir.get(), t->base, full);
      if (!s.ok()) return FailedOn(r, s.status());
      st = *s;
    } else if (!absl::IsNotFound(d.status())) {
      return FailedOn(r, d.status());
    }
  }
  if (st.is_symlink) return FailedOn(r, SymlinkRefused(*t, t->dirs.size() + 1));

  if (r.state() == "absent") {
    if (!st.exists) return MakeResult(r, "ok", "none", "absent");
    if (st.is_directory) {
      return MakeResult(r, "failed", "none", StrCat(r.target_path(), " is a directory"));
    }
    if (absl::Status s = RemoveAt(dir.get(), t->base, full, /*directory=*/false); !s.ok()) {
      return FailedOn(r, s);
    }
    return MakeResult(r, "changed", "deleted", "removed");
  }
  if (!r.state().empty() && r.state() != "present") {
    return MakeResult(r, "failed", "none", StrCat("unknown state '", r.state(), "'"));
  }

  auto markers = FindMarkers(r.content());
  if (!markers.ok()) return Failed(r, markers.status());
  const bool secret_bearing = !markers->empty();
  auto own = ResolveOwnership(r, secret_bearing ? 0600 : 0644);
  if (!own.ok()) return Failed(r, own.status());
  const mode_t mode = own->mode;
  const uid_t uid = own->uid;
  const gid_t gid = own->gid;

  // Values are substituted only now, into locked memory.
  auto rendered = SubstituteMarkers(r.content(), [&](std::string_view p) { return values.Get(p); });
  if (!rendered.ok()) return Failed(r, rendered.status());
  const std::string new_fp = Fingerprint(rendered->Reveal());

  if (st.is_directory) {
    return MakeResult(r, "failed", "none", StrCat(r.target_path(), " is a directory"));
  }
  std::string old_fp;
  bool relinked = false;
  if (st.is_regular) {
    bool same = false;
    if (st.size == rendered->size()) {
      auto existing = ReadFileSecretAt(dir.get(), t->base, full, kMaxExistingFileBytes);
      if (!existing.ok()) return FailedOn(r, existing.status());
      same = existing->ConstantTimeEquals(*rendered);
      if (!same) old_fp = Fingerprint(existing->Reveal());
    } else if (st.size <= kMaxExistingFileBytes) {
      auto existing = ReadFileSecretAt(dir.get(), t->base, full, kMaxExistingFileBytes);
      if (existing.ok()) old_fp = Fingerprint(existing->Reveal());
    }
    // A hard link shares its inode with another name, perhaps outside the
    // apply root: owner and mode are never changed in place on it; the
    // target is replaced by a new inode (rename) instead.
    relinked = same && st.nlink > 1;
    if (same && st.nlink == 1) {
      // A named temp a killed worker left behind (it may hold a value) goes
      // even when the file itself needs no write.
      if (absl::Status s = RemoveStaleTempAt(dir.get(), t->base, full); !s.ok()) {
        return FailedOn(r, s);
      }
      bool mode_ok = st.mode == mode;
      bool uid_ok = uid == static_cast<uid_t>(-1) || st.uid == uid;
      bool gid_ok = gid == static_cast<gid_t>(-1) || st.gid == gid;
      if (mode_ok && uid_ok && gid_ok) return MakeResult(r, "ok", "none", "up to date");
      if (absl::Status s =
              FixOwnerModeAt(dir.get(), t->base, full, /*want_directory=*/false, mode, uid, gid);
          !s.ok()) {
        return FailedOn(r, s);
      }
      return MakeResult(
          r, "changed", "updated",
          StrCat("owner/mode fixed (mode ", OctalMode(st.mode), " -> ", OctalMode(mode), ")"));
    }
  }
  // Walked again now, creating what is missing: the directory written into
  // is the one found below the root at this moment, whatever happened to
  // the path since the inspection above (values were fetched in between).
  // New directories' own entries are fsynced with the file's (FlushWrites).
  auto parent = OpenParentDir(*t, /*create=*/true, &dirs_to_sync_);
  if (!parent.ok()) return FailedOn(r, parent.status());
  // No owner/group declared: what a root writer would get, whatever the
  // worker's uid (--worker-user).
  auto def = DefaultOwnerIn(parent->get(), t->ParentFull());
  if (!def.ok()) return FailedOn(r, def.status());
  const uid_t new_uid = uid == static_cast<uid_t>(-1) ? def->uid : uid;
  const gid_t new_gid = gid == static_cast<gid_t>(-1) ? def->gid : gid;
  // Written now (owner, mode, content); made durable and visible by FlushWrites.
  auto prepared = PrepareWriteAt(std::move(*parent), t->ParentFull(), t->base, rendered->Reveal(),
                                 mode, new_uid, new_gid);
  if (!prepared.ok()) return FailedOn(r, prepared.status());
  auto pending = std::make_unique<Pending>();
  pending->write = std::move(*prepared);
  pending->result_index = current_index_;
  pending->name = r.name();
  pending->resource = r;
  pending_.push_back(std::move(pending));
  if (!st.exists) {
    return MakeResult(r, "changed", "created", StrCat("created (fingerprint ", new_fp, ")"));
  }
  if (relinked) {
    return MakeResult(r, "changed", "updated",
                      "replaced: it was a hard link (its other names keep the old inode)");
  }
  return MakeResult(
      r, "changed", "updated",
      StrCat("content changed (fingerprint ", old_fp.empty() ? "?" : old_fp, " -> ", new_fp, ")"));
}

v1::ResourceResult ApplyEngine::ApplyDirectory(const v1::Resource& r) {
  auto t = Target(r.target_path(), "target_path");
  if (!t.ok()) return Failed(r, t.status());
  const std::string full = t->Full();
  const bool absent = r.state() == "absent";
  // Parents are created (0755, root-owned) only when the directory is wanted.
  auto dir = OpenParentDir(*t, /*create=*/!absent, &dirs_to_sync_);
  if (!dir.ok()) {
    if (absent && absl::IsNotFound(dir.status())) return MakeResult(r, "ok", "none", "absent");
    return FailedOn(r, dir.status());
  }
  auto st = InspectAt(dir->get(), t->base, full);
  if (!st.ok()) return FailedOn(r, st.status());
  if (st->is_symlink) return FailedOn(r, SymlinkRefused(*t, t->dirs.size() + 1));
  if (absent) {
    if (!st->exists) return MakeResult(r, "ok", "none", "absent");
    if (!st->is_directory) {
      return MakeResult(r, "failed", "none", StrCat(r.target_path(), " is not a directory"));
    }
    if (absl::Status s = RemoveAt(dir->get(), t->base, full, /*directory=*/true); !s.ok()) {
      return MakeResult(r, "failed", "none",
                        StrCat("cannot remove ", r.target_path(), ": ", s.message()));
    }
    return MakeResult(r, "changed", "deleted", "removed");
  }
  auto own = ResolveOwnership(r, 0755);
  if (!own.ok()) return Failed(r, own.status());
  const mode_t mode = own->mode;
  const uid_t uid = own->uid;
  const gid_t gid = own->gid;
  if (st->exists && !st->is_directory) {
    return MakeResult(r, "failed", "none",
                      StrCat(r.target_path(), " exists and is not a directory"));
  }
  if (!st->exists) {
    auto def = DefaultOwnerIn(dir->get(), t->ParentFull());
    if (!def.ok()) return FailedOn(r, def.status());
    if (absl::Status s = MakeDirAt(dir->get(), t->base, full, mode,
                                   uid == static_cast<uid_t>(-1) ? def->uid : uid,
                                   gid == static_cast<gid_t>(-1) ? def->gid : gid);
        !s.ok()) {
      return FailedOn(r, s);
    }
    dirs_to_sync_.insert(t->ParentFull());
    return MakeResult(r, "changed", "created", StrCat("created (mode ", OctalMode(mode), ")"));
  }
  bool mode_ok = st->mode == mode;
  bool uid_ok = uid == static_cast<uid_t>(-1) || st->uid == uid;
  bool gid_ok = gid == static_cast<gid_t>(-1) || st->gid == gid;
  if (mode_ok && uid_ok && gid_ok) return MakeResult(r, "ok", "none", "up to date");
  if (absl::Status s =
          FixOwnerModeAt(dir->get(), t->base, full, /*want_directory=*/true, mode, uid, gid);
      !s.ok()) {
    return FailedOn(r, s);
  }
  return MakeResult(r, "changed", "updated", "owner/mode fixed");
}

v1::ResourceResult ApplyEngine::ApplyExec(const v1::Resource& r, ValueSource& values) {
  if (r.command().empty()) return MakeResult(r, "failed", "none", "exec has no command");
  if (!r.creates().empty()) {
    auto creates = Rooted(r.creates(), "creates");
    if (!creates.ok()) return Failed(r, creates.status());
    auto st = Inspect(*creates);
    if (!st.ok()) return Failed(r, st.status());
    if (st->exists) return MakeResult(r, "ok", "skipped", StrCat(r.creates(), " exists"));
  }
  // Values never reach argv or the environment (the server refuses this
  // too; the worker re-checks what it is about to execute).
  for (const std::string& arg : r.command()) {
    if (ContainsMarkerText(arg)) {
      return MakeResult(r, "failed", "none", "exec command contains a secret marker (refused)");
    }
  }
  ExecSpec spec;
  spec.env.push_back(kExecPath);
  for (const v1::EnvVar& e : r.environment()) {
    if (ContainsMarkerText(e.name()) || ContainsMarkerText(e.value())) {
      return MakeResult(r, "failed", "none", "exec environment contains a secret marker (refused)");
    }
    if (e.name().empty() || e.name().find('=') != std::string::npos || e.name() == "PATH") {
      if (e.name() == "PATH") {
        spec.env[0] = StrCat("PATH=", e.value());
        continue;
      }
      return MakeResult(r, "failed", "none",
                        StrCat("bad environment variable name '", e.name(), "'"));
    }
    spec.env.push_back(StrCat(e.name(), "=", e.value()));
  }

  // confine: built before any value is touched; a resource whose
  // confinement cannot be built fails and its command never runs.
  std::optional<ExecConfineSetup> confine;
  if (r.has_confine()) {
    auto c = PrepareExecConfine(r.confine(), root_fd_ ? root_fd_.get() : -1, options_.apply_root,
                                sandbox::LandlockAbi());
    if (!c.ok()) return FailedOn(r, c.status());
    confine = std::move(*c);
    spec.confine.landlock_ruleset_fd = confine->writes ? confine->writes->fd() : -1;
    spec.confine.deny_network = confine->deny_network;
  }

  auto lookup = [&](std::string_view p) { return values.Get(p); };
  SecretFile secret_file;
  std::optional<SecretBuffer> stdin_buf;
  if (!r.secret_file().empty()) {
    auto v = SubstituteMarkers(r.secret_file(), lookup);
    if (!v.ok()) return Failed(r, v.status());
    // <apply-root>/tmp is below the boundary: opened without following a
    // link (a symlinked tmp fails the resource); /tmp and an explicit
    // secret_file_dir are the operator's.
    std::string base = options_.secret_file_dir;
    sandbox::UniqueFd base_fd;
    if (base.empty() && !options_.apply_root.empty() && root_fd_) {
      // One segment below the root fd with O_NOFOLLOW: beneath, no link.
      sandbox::UniqueFd tmp(
          ::openat(root_fd_.get(), "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      struct stat lst;
      if (tmp && ::faccessat(root_fd_.get(), "tmp", W_OK, AT_SYMLINK_NOFOLLOW) == 0) {
        base = StrCat(options_.apply_root, "/tmp");
        base_fd = std::move(tmp);
      } else if (!tmp && ::fstatat(root_fd_.get(), "tmp", &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
                 S_ISLNK(lst.st_mode)) {
        return FailedOn(r, absl::FailedPreconditionError(
                               StrCat(options_.apply_root,
                                      "/tmp is a symbolic link; the secret_file is not written "
                                      "through it (the worker never follows a link below the "
                                      "apply root)")));
      }
    }
    if (base.empty()) base = "/tmp";
    if (!base_fd) {
      base_fd = sandbox::UniqueFd(::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!base_fd) {
        return Failed(r, absl::InternalError(StrCat("cannot open the secret_file directory ", base,
                                                    ": ", std::strerror(errno))));
      }
    }
    if (swept_dirs_.insert(base).second) {
      int n = SweepStaleSecretFilesAt(base_fd.get());
      if (n > 0)
        Log(LogLevel::kWarn, "removed secret_file dirs of dead workers",
            {{"dir", base}, {"count", n}});
    }
    auto uid = LookupUser(r.owner());
    auto gid = LookupGroup(r.group());
    if (absl::Status s = secret_file.Create(base_fd.get(), base, v->Reveal(), uid.ok() ? *uid : -1,
                                            gid.ok() ? *gid : -1);
        !s.ok()) {
      return Failed(r, s);
    }
  }
  for (const std::string& arg : r.command()) {
    std::string a = arg;
    size_t pos = a.find(kSecretFilePlaceholder);
    while (pos != std::string::npos) {
      if (secret_file.path().empty()) {
        return MakeResult(r, "failed", "none", "{{ .SecretFile }} used without secret_file");
      }
      a.replace(pos, kSecretFilePlaceholder.size(), secret_file.path());
      pos = a.find(kSecretFilePlaceholder, pos + secret_file.path().size());
    }
    spec.argv.push_back(std::move(a));
  }
  if (!r.stdin().empty()) {
    auto v = SubstituteMarkers(r.stdin(), lookup);
    if (!v.ok()) return Failed(r, v.status());
    stdin_buf = std::move(*v);
  }
  if (!r.cwd().empty()) {
    auto cwd = Rooted(r.cwd(), "cwd");
    if (!cwd.ok()) return Failed(r, cwd.status());
    spec.cwd = *cwd;
  }
  uint32_t timeout =
      r.timeout_seconds() > 0 ? r.timeout_seconds() : options_.default_timeout_seconds;
  spec.timeout = std::chrono::seconds(timeout);
  spec.max_output_bytes = options_.max_output_bytes;
  if (options_.exec_child_seal == nullptr) {
    auto seal = sandbox::PrepareExecChildSeal();
    if (!seal.ok()) {
      return MakeResult(r, "failed", "none",
                        StrCat("exec-child seccomp layer could not be prepared, command not run (",
                               std::string(seal.status().message()), ")"));
    }
    options_.exec_child_seal = std::make_shared<const sandbox::ExecChildSeal>(std::move(*seal));
  }
  spec.exec_child_seal = options_.exec_child_seal.get();
  spec.spare_pid = options_.spare_pid;

  auto out = RunCommand(spec, stdin_buf ? &*stdin_buf : nullptr);
  if (stdin_buf) stdin_buf->Clear();
  if (!out.ok()) return Failed(r, out.status());
  // Scrub against every value of the bundle, resolving the ones this run has
  // not needed yet. If any cannot be loaded, the output is withheld: an
  // unscrubbed line is never reported.
  bool all_loaded = true;
  for (const std::string& ref : bundle_refs_) all_loaded &= values.Get(ref).ok();
  size_t redactions = 0;  // counted for the run result (issue 15.4): a number, no content
  std::string scrubbed =
      all_loaded
          ? ScrubOutputAsText(out->output.Reveal(), values.Resolved(), &redactions,
                              redaction_window_ == 0 ? kDefaultRedactionWindow : redaction_window_)
          : std::string(
                "[output withheld: not every value could be loaded "
                "to scrub it]");
  out->output.Clear();
  if (scrubbed.size() > kMessageOutputBytes) {
    // Cut at a character boundary: the text stays valid UTF-8.
    scrubbed = StrCat("...", Utf8Tail(scrubbed, kMessageOutputBytes));
  }
  std::string tail = scrubbed.empty() ? "" : StrCat("; output: ", scrubbed);
  v1::ResourceResult res;
  if (out->timed_out) {
    res = MakeResult(r, "failed", "none", StrCat("timed out after ", timeout, " s", tail));
  } else if (!out->exited) {
    res = MakeResult(r, "failed", "none", StrCat("killed by signal ", out->signal, tail));
  } else if (out->exit_code != 0) {
    res = MakeResult(r, "failed", "none", StrCat("exit code ", out->exit_code, tail));
  } else {
    res = MakeResult(r, "changed", r.creates().empty() ? "updated" : "created",
                     StrCat("ran (exit 0)", tail));
  }
  res.set_redactions(static_cast<uint32_t>(std::min<size_t>(redactions, UINT32_MAX)));
  return res;
}

}  // namespace vigo::worker
