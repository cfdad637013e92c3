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
// file), mkdir, unlink, symlink (a link at <path> to /etc/shadow), fork
// (path ignored; a child that exits at once), exec (execve of <path>).
//
// It then plays a subverted applier on the worker socket: each line of the
// content of a resource named "hook-runexec*" is
//   result <index> <status>   the applier's result for resource <index>
//   runexec <index>           ask the worker to run exec resource <index>
// sent as the applier would; after a runexec it waits for the reply and
// prints "hook-runexec <index> reply <type>" (the message type, or "none"
// when the worker closed the socket).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>

#include "agent-worker/worker_main.h"
#include "vigo/v1/bundle.pb.h"

namespace {

void RunExecAsTheApplier(const vigo::v1::PolicyBundle& bundle, int sock) {
  for (const vigo::v1::Resource& r : bundle.resources()) {
    if (r.name().rfind("hook-runexec", 0) != 0) continue;
    std::istringstream lines(r.content());
    std::string op;
    uint32_t index = 0;
    while (lines >> op >> index) {
      if (op == "result") {
        std::string status;
        lines >> status;
        vigo::v1::ResourceResult res;
        res.set_name(index < static_cast<uint32_t>(bundle.resources_size())
                         ? bundle.resources(static_cast<int>(index)).name()
                         : "");
        res.set_status(status);
        res.set_action("none");
        std::string m = "r" + res.SerializeAsString();
        ::send(sock, m.data(), m.size(), MSG_NOSIGNAL);
      } else if (op == "runexec") {
        std::string m = "E";
        m.append(reinterpret_cast<const char*>(&index), 4);
        ::send(sock, m.data(), m.size(), MSG_NOSIGNAL);
        static char reply[256 * 1024];
        ssize_t n = ::recv(sock, reply, sizeof(reply), 0);
        std::fprintf(stderr, "hook-runexec %u reply %s\n", index,
                     n > 0 ? std::string(1, reply[0]).c_str() : "none");
        std::fflush(stderr);
      }
    }
  }
}

}  // namespace

extern "C" void VigoApplierHookForTest(const vigo::v1::PolicyBundle& bundle, int worker_socket) {
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
      } else if (op == "fork") {
        pid_t pid = ::fork();
        if (pid == 0) ::_exit(0);
        if (pid > 0) ::waitpid(pid, nullptr, 0), rc = 0;
      } else if (op == "stop") {
        rc = ::raise(SIGSTOP);  // as a process of the namespace could do
      } else if (op == "exec") {
        char* argv[] = {path.data(), nullptr};
        rc = ::execv(path.c_str(), argv);  // returns only on failure
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
  RunExecAsTheApplier(bundle, worker_socket);
}

int main(int argc, char** argv) { return vigo::worker::WorkerMain(argc, argv); }
