// vigo-worker with the applier's test hook compiled in (the production
// binary has no definition of VigoApplierHookForTest; agent-worker/applier.cc
// calls it only when a binary defines it). Used by
// tests/sandbox/applier_landlock_test.cc: a real agent started from a bin
// dir where this binary is its vigo-worker.
//
// The hook plays a buggy applier: right after the applier restricted itself
// it carries out every line "<op> <absolute path>" of the content of each
// resource named "hook-escape*" and prints one line per attempt to stderr:
//   hook-escape <op> <path> ok|errno <n>
// ops: create (O_CREAT|O_WRONLY), truncate (O_WRONLY|O_TRUNC of an existing
// file), mkdir, unlink, symlink (a link at <path> to /etc/shadow).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <sstream>
#include <string>

#include "agent-worker/worker_main.h"
#include "vigo/v1/bundle.pb.h"

extern "C" void VigoApplierHookForTest(const vigo::v1::PolicyBundle& bundle) {
  for (const vigo::v1::Resource& r : bundle.resources()) {
    if (r.name().rfind("hook-escape", 0) != 0) continue;
    std::istringstream lines(r.content());
    std::string op, path;
    while (lines >> op >> path) {
      int rc = -1;
      if (op == "create") {
        rc = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (rc >= 0) ::close(rc), rc = 0;
      } else if (op == "truncate") {
        rc = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (rc >= 0) ::close(rc), rc = 0;
      } else if (op == "mkdir") {
        rc = ::mkdir(path.c_str(), 0700);
      } else if (op == "unlink") {
        rc = ::unlink(path.c_str());
      } else if (op == "symlink") {
        rc = ::symlink("/etc/shadow", path.c_str());
      } else {
        errno = EINVAL;
      }
      const int err = errno;
      if (rc == 0) {
        std::fprintf(stderr, "hook-escape %s %s ok\n", op.c_str(), path.c_str());
      } else {
        std::fprintf(stderr, "hook-escape %s %s errno %d\n", op.c_str(), path.c_str(), err);
      }
    }
  }
  std::fflush(stderr);
}

int main(int argc, char** argv) { return vigo::worker::WorkerMain(argc, argv); }
