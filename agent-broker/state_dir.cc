#include "agent-broker/state_dir.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/syscall_status.h"
#include "sandbox/unique_fd.h"

namespace vigo::broker {

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

absl::Status StateDir::Ensure() const {
  struct stat st;
  if (::stat(dir_.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(StrCat(dir_, " is not a directory"));
    return absl::OkStatus();
  }
  // Parents as needed (0755), the state dir itself 0700.
  std::string cur;
  size_t pos = 0;
  while ((pos = dir_.find('/', pos + 1)) != std::string::npos) {
    cur = dir_.substr(0, pos);
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return sandbox::ErrnoStatus(errno, "mkdir", cur);
  }
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) return sandbox::ErrnoStatus(errno, "mkdir", dir_);
  return absl::OkStatus();
}

namespace {
constexpr const char* kStateFiles[] = {"bundle.json", "last_run.json", "attestation.json"};
}  // namespace

absl::Status StateDir::OpenForWriting() {
  for (const char* name : kStateFiles) {
    std::string path = StrCat(dir_, "/", name);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return sandbox::ErrnoStatus(errno, "open", path);
    fds_[name] = std::make_shared<sandbox::UniqueFd>(fd);
  }
  return absl::OkStatus();
}

absl::Status StateDir::Lock() {
  const std::string path = StrCat(dir_, "/agent.lock");
  auto fd = std::make_shared<sandbox::UniqueFd>(
      ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!*fd) return sandbox::ErrnoStatus(errno, "open", path);
  int rc;
  do {
    rc = ::flock(fd->get(), LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno != EWOULDBLOCK) return sandbox::ErrnoStatus(errno, "flock", path);
    // The holder writes its pid right after taking the lock; it may not have
    // yet, so an unreadable pid is reported as unknown, not guessed.
    char buf[32] = {};
    ssize_t n = ::pread(fd->get(), buf, sizeof(buf) - 1, 0);
    std::string pid;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pid.push_back(buf[i]);
    return absl::FailedPreconditionError(
        StrCat(dir_, " is in use by another vigo agent (pid ", pid.empty() ? "unknown" : pid,
               "); one agent per state dir: stop it, wait for it, or use another --state-dir"));
  }
  const std::string me = StrCat(static_cast<int64_t>(::getpid()), "\n");
  if (::ftruncate(fd->get(), 0) != 0 ||
      ::pwrite(fd->get(), me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    return sandbox::ErrnoStatus(errno, "write", path);
  }
  lock_fd_ = std::move(fd);
  return absl::OkStatus();
}

std::vector<int> StateDir::fds() const {
  std::vector<int> out;
  if (lock_fd_) out.push_back(lock_fd_->get());
  for (const auto& [name, fd] : fds_) out.push_back(fd->get());
  return out;
}

absl::Status StateDir::WriteAtomic(const std::string& name, const std::string& data) const {
  std::string path = StrCat(dir_, "/", name);
  if (auto it = fds_.find(name); it != fds_.end()) {
    int fd = it->second->get();
    struct stat st;
    if (::fstat(fd, &st) != 0) return sandbox::ErrnoStatus(errno, "fstat", path);
    std::string out = data;
    if (static_cast<size_t>(st.st_size) > out.size()) out.append(static_cast<size_t>(st.st_size) - out.size(), ' ');
    if (::lseek(fd, 0, SEEK_SET) != 0) return sandbox::ErrnoStatus(errno, "lseek", path);
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = ::write(fd, out.data() + off, out.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        return sandbox::ErrnoStatus(errno, "write", path);
      }
      off += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }
  std::string tmp = StrCat(path, ".tmp");
  ::unlink(tmp.c_str());
  sandbox::UniqueFd fd(::open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return sandbox::ErrnoStatus(errno, "create", tmp);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::unlink(tmp.c_str());
      return sandbox::ErrnoStatus(err, "write", tmp);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return sandbox::ErrnoStatus(err, "write", path);
  }
  sandbox::UniqueFd d(::open(dir_.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  if (d) ::fsync(d.get());
  return absl::OkStatus();
}

absl::StatusOr<std::string> StateDir::Read(const std::string& name) const {
  std::string path = StrCat(dir_, "/", name);
  sandbox::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return sandbox::ErrnoStatus(errno, "open", path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return sandbox::ErrnoStatus(errno, "read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (size_t{64} << 20)) return absl::FailedPreconditionError(StrCat(path, " is too large"));
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.empty()) return absl::NotFoundError(StrCat(path, " is empty"));
  return out;
}

absl::StatusOr<v1::PolicyBundle> StateDir::LoadBundle() const {
  VIGO_ASSIGN_OR_RETURN(std::string json, Read("bundle.json"));
  v1::PolicyBundle b;
  if (!google::protobuf::util::JsonStringToMessage(json, &b).ok()) {
    return absl::DataLossError(StrCat(dir_, "/bundle.json does not parse"));
  }
  return b;
}

absl::Status StateDir::SaveBundle(const v1::PolicyBundle& bundle) const {
  return WriteAtomic("bundle.json", ToJson(bundle) + "\n");
}

absl::Status StateDir::SaveLastRun(const v1::ReportResultRequest& run) const {
  return WriteAtomic("last_run.json", ToJson(run) + "\n");
}

absl::StatusOr<std::string> StateDir::LoadLastRunJson() const { return Read("last_run.json"); }

absl::Status StateDir::SaveAttestation(const std::vector<v1::AttestationReport>& reports) const {
  std::string out;
  for (const auto& r : reports) StrAppend(&out, ToJson(r), "\n");
  return WriteAtomic("attestation.json", out);
}

absl::StatusOr<std::string> StateDir::LoadAttestationJson() const { return Read("attestation.json"); }

}  // namespace vigo::broker
