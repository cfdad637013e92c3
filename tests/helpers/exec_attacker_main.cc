// A hostile exec resource for the jail tests (tests/sandbox/jail_test.cc):
// run by a real agent as an exec command, it tries the routes an adversarial
// review used against main and writes what happened, one "key value" line per
// attempt, to REPORT (a path outside the apply root the test reads).
//
//   exec_attacker tiocsti REPORT            push "id\n" into every terminal it can reach
//   exec_attacker devices REPORT CANARY     read every block device, mknod one
//   exec_attacker proc REPORT PID PATH      count /proc pids; read /proc/PID/root/PATH
//
// Each risky call runs in a forked child, so a seccomp kill (SIGSYS) of one
// attempt is recorded ("killed 31") and the next attempt still runs.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace {

std::ofstream g_report;

void Line(const std::string& key, const std::string& value) {
  g_report << key << " " << value << "\n";
  g_report.flush();
}

// Runs `attempt` in a child; returns "ok", "errno N" or "killed SIG".
std::string InChild(const std::function<int()>& attempt) {
  pid_t pid = ::fork();
  if (pid == 0) {
    errno = 0;
    int rc = attempt();
    ::_exit(rc == 0 ? 0 : (errno == 0 ? 250 : errno));
  }
  if (pid < 0) return "fork-failed";
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return "killed " + std::to_string(WTERMSIG(status));
  if (WEXITSTATUS(status) == 0) return "ok";
  return "errno " + std::to_string(WEXITSTATUS(status));
}

int PushInput(int fd) {
  const char text[] = "id\n";
  for (const char* c = text; *c != '\0'; ++c) {
    if (::ioctl(fd, TIOCSTI, c) != 0) return -1;
  }
  return 0;
}

void Tiocsti() {
  for (int fd = 0; fd <= 2; ++fd) {
    Line("fd" + std::to_string(fd) + "_isatty", ::isatty(fd) ? "1" : "0");
    Line("fd" + std::to_string(fd), InChild([fd] { return PushInput(fd); }));
  }
  std::vector<std::string> ttys = {"/dev/tty", "/dev/console", "/dev/tty0", "/dev/tty1"};
  if (DIR* d = ::opendir("/dev/pts")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] >= '0' && e->d_name[0] <= '9') ttys.push_back(std::string("/dev/pts/") + e->d_name);
    }
    ::closedir(d);
  }
  for (const std::string& t : ttys) {
    Line(t, InChild([&t] {
           int fd = ::open(t.c_str(), O_RDWR | O_NOCTTY);
           if (fd < 0) return -1;
           return PushInput(fd);
         }));
  }
  // TIOCLINUX on whatever stdin is (the exec-child filter kills the request).
  Line("tioclinux", InChild([] {
         char sub = 2;  // TIOCL_SETSEL
         return ::ioctl(0, TIOCLINUX, &sub);
       }));
}

void Devices(const std::string& canary) {
  size_t entries = 0;
  std::string names;
  if (DIR* d = ::opendir("/dev")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      ++entries;
      names += std::string(e->d_name) + ",";
    }
    ::closedir(d);
  }
  Line("dev_entries", std::to_string(entries));
  Line("dev_names", names);
  // Every block device the kernel has, by the name it would have in /dev.
  size_t tried = 0, opened = 0, leaked = 0;
  if (DIR* d = ::opendir("/sys/class/block")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      ++tried;
      std::string path = std::string("/dev/") + e->d_name;
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      ++opened;
      std::string data(1 << 16, '\0');
      ssize_t n = ::read(fd, data.data(), data.size());
      if (n > 0 && data.substr(0, static_cast<size_t>(n)).find(canary) != std::string::npos) ++leaked;
      ::close(fd);
    }
    ::closedir(d);
  }
  Line("block_tried", std::to_string(tried));
  Line("block_opened", std::to_string(opened));
  Line("block_leaked", std::to_string(leaked));
  // Make a node for the loop device instead (needs CAP_MKNOD).
  Line("mknod", InChild([] {
         std::string p = "/tmp/vigo-attacker-node." + std::to_string(::getpid());
         int rc = ::mknod(p.c_str(), S_IFBLK | 0600, makedev(7, 0));
         if (rc == 0) ::unlink(p.c_str());
         return rc;
       }));
}

void Proc(const std::string& pid, const std::string& path, const std::string& canary) {
  size_t pids = 0;
  bool saw_target = false;
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      ++pids;
      saw_target |= pid == e->d_name;
    }
    ::closedir(d);
  }
  Line("proc_pids", std::to_string(pids));
  Line("saw_target", saw_target ? "1" : "0");
  std::ifstream f("/proc/" + pid + "/root" + path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Line("root_read", f.good() || !text.empty() ? "1" : "0");
  Line("root_leaked", text.find(canary) != std::string::npos ? "1" : "0");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: exec_attacker tiocsti|devices|proc REPORT ...\n");
    return 2;
  }
  const std::string mode = argv[1];
  g_report.open(argv[2], std::ios::trunc);
  if (!g_report) return 3;
  if (mode == "tiocsti") {
    Tiocsti();
  } else if (mode == "devices" && argc == 4) {
    Devices(argv[3]);
  } else if (mode == "proc" && argc == 6) {
    Proc(argv[3], argv[4], argv[5]);
  } else {
    std::fprintf(stderr, "exec_attacker: bad arguments for %s\n", mode.c_str());
    return 2;
  }
  Line("done", "1");
  return 0;
}
