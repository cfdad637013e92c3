// A hostile exec resource for the jail tests (tests/sandbox/jail_test.cc):
// run by a real agent as an exec command, it tries the routes an adversarial
// review used against main and writes what happened, one "key value" line per
// attempt, to REPORT (a path outside the apply root the test reads).
//
//   exec_attacker tiocsti REPORT            push "id\n" into every terminal it can reach
//   exec_attacker devices REPORT CANARY     read every block device, mknod one
//   exec_attacker proc REPORT PID PATH      count /proc pids; read /proc/PID/root/PATH
//   exec_attacker read REPORT CANARY PATH...          read each PATH ("path<i>", "leaked<i>")
//   exec_attacker handle REPORT CANARY DIR FILE  open_by_handle_at(open(DIR), the handle in
//                                                FILE: "TYPE HEX", taken by the test on the host)
//   exec_attacker link REPORT CANARY SRC DSTDIR       hard-link SRC into DSTDIR four ways
//   exec_attacker pid REPORT [kill]         pidfd_open/pidfd_getfd/kcmp/setns on PID 1 and
//                                           the parent; "kill": SIGKILL PID 1 via its pidfd
//   exec_attacker confine REPORT DIR VICTIM write, make and remove beneath DIR;
//                                           read, write, truncate, rename, remove
//                                           VICTIM and create beside it
//   exec_attacker network REPORT            socket() of AF_INET, AF_INET6,
//                                           AF_NETLINK and AF_UNIX; socketpair
//
// Each risky call runs in a forked child, so a seccomp kill (SIGSYS) of one
// attempt is recorded ("killed 31") and the next attempt still runs.
#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <linux/netlink.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

bool Leaked(const std::string& path, const std::string& canary) {
  std::ifstream f(path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return text.find(canary) != std::string::npos;
}

void Read(const std::string& canary, const std::vector<std::string>& paths) {
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string& p = paths[i];
    Line("path" + std::to_string(i), InChild([&p] {
           int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
           if (fd < 0) return -1;
           ::close(fd);
           return 0;
         }));
    Line("leaked" + std::to_string(i), Leaked(p, canary) ? "1" : "0");
  }
}

// The handle the test took on the host with name_to_handle_at, opened from a
// directory fd on the same file system: the route around every mount cover.
void Handle(const std::string& canary, const std::string& dir, const std::string& file) {
  std::ifstream in(file);
  int type = 0;
  std::string hex;
  in >> type >> hex;
  std::vector<unsigned char> bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<unsigned char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  Line("handle_bytes", std::to_string(bytes.size()));
  Line("open_by_handle_at", InChild([&] {
         int mount_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
         if (mount_fd < 0) return -1;
         std::vector<unsigned char> buf(sizeof(file_handle) + bytes.size());
         auto* fh = reinterpret_cast<file_handle*>(buf.data());
         fh->handle_bytes = static_cast<unsigned>(bytes.size());
         fh->handle_type = type;
         std::memcpy(fh->f_handle, bytes.data(), bytes.size());
         int fd = static_cast<int>(::syscall(SYS_open_by_handle_at, mount_fd, fh, O_RDONLY));
         if (fd < 0) return -1;
         std::string data(1 << 16, '\0');
         ssize_t n = ::read(fd, data.data(), data.size());
         const bool leaked =
             n > 0 && data.substr(0, static_cast<size_t>(n)).find(canary) != std::string::npos;
         Line("handle_leaked", leaked ? "1" : "0");
         return 0;
       }));
}

// Four ways to give the inode behind SRC a second name in DSTDIR; each new
// name is read (did it reach the bytes?) and removed again.
void Link(const std::string& canary, const std::string& src, const std::string& dstdir) {
  const std::string pid = std::to_string(::getpid());
  auto dst = [&](int i) { return dstdir + "/.vigo-attacker-link" + std::to_string(i) + "." + pid; };
  std::vector<std::function<int()>> ways = {
      [&] { return ::link(src.c_str(), dst(0).c_str()); },
      [&] { return ::linkat(AT_FDCWD, src.c_str(), AT_FDCWD, dst(1).c_str(), AT_SYMLINK_FOLLOW); },
      [&] {
        int fd = ::open(src.c_str(), O_PATH | O_CLOEXEC);
        if (fd < 0) return -1;
        return ::linkat(fd, "", AT_FDCWD, dst(2).c_str(), AT_EMPTY_PATH);
      },
      [&] {
        int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return -1;
        std::string via = "/proc/self/fd/" + std::to_string(fd);
        return ::linkat(AT_FDCWD, via.c_str(), AT_FDCWD, dst(3).c_str(), AT_SYMLINK_FOLLOW);
      },
  };
  for (size_t i = 0; i < ways.size(); ++i) {
    const std::string k = "link" + std::to_string(i);
    Line(k, InChild(ways[i]));
    Line(k + "_leaked", Leaked(dst(static_cast<int>(i)), canary) ? "1" : "0");
    ::unlink(dst(static_cast<int>(i)).c_str());
  }
}

// Reaching into the worker (PID 1 of its namespace) or the parent process.
void Pid(bool kill_init) {
  // PID 1 is the worker in the jail; outside (the test's control) it is the
  // host's init, which the control leaves alone.
  std::vector<pid_t> targets;
  if (kill_init || ::getppid() == 1) targets.push_back(1);
  if (::getppid() != 1) targets.push_back(::getppid());
  Line("ppid", std::to_string(::getppid()));
  for (pid_t t : targets) {
    const std::string k = "_" + std::string(t == 1 ? "init" : "parent");
    Line("pidfd_open" + k, InChild([t] {
           int fd = static_cast<int>(::syscall(SYS_pidfd_open, t, 0));
           return fd < 0 ? -1 : 0;
         }));
    Line("pidfd_getfd" + k, InChild([t] {
           int pfd = static_cast<int>(::syscall(SYS_pidfd_open, t, 0));
           if (pfd < 0) return -1;
           return ::syscall(SYS_pidfd_getfd, pfd, 0, 0) < 0 ? -1 : 0;
         }));
    Line("kcmp" + k,
         InChild([t] { return ::syscall(SYS_kcmp, ::getpid(), t, KCMP_FILE, 0, 0) < 0 ? -1 : 0; }));
    Line("setns" + k, InChild([t] {
           int pfd = static_cast<int>(::syscall(SYS_pidfd_open, t, 0));
           if (pfd < 0) return -1;
           return ::setns(pfd, CLONE_NEWNS);
         }));
  }
  if (kill_init) {
    Line("pidfd_kill_init", InChild([] {
           int pfd = static_cast<int>(::syscall(SYS_pidfd_open, 1, 0));
           if (pfd < 0) return -1;
           return static_cast<int>(::syscall(SYS_pidfd_send_signal, pfd, SIGKILL, nullptr, 0));
         }));
    ::usleep(200 * 1000);
    Line("init_alive", ::kill(1, 0) == 0 ? "1" : "0");
  }
}

}  // namespace

// `confine: {writable: [DIR]}` tried from inside: what may and may not change.
void Confine(const std::string& dir, const std::string& victim) {
  const std::string beside = victim.substr(0, victim.rfind('/'));
  auto write_new = [](const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    int rc = ::write(fd, "x", 1) == 1 ? 0 : -1;
    ::close(fd);
    return rc;
  };
  Line("write_inside", InChild([&] { return write_new(dir + "/new.txt"); }));
  Line("mkdir_inside", InChild([&] { return ::mkdir((dir + "/sub").c_str(), 0755); }));
  Line("rename_inside", InChild([&] {
         return ::rename((dir + "/new.txt").c_str(), (dir + "/sub/moved.txt").c_str());
       }));
  Line("unlink_inside", InChild([&] { return ::unlink((dir + "/sub/moved.txt").c_str()); }));
  Line("read_victim", InChild([&] {
         int fd = ::open(victim.c_str(), O_RDONLY | O_CLOEXEC);
         if (fd < 0) return -1;
         char c;
         int rc = ::read(fd, &c, 1) == 1 ? 0 : -1;
         ::close(fd);
         return rc;
       }));
  Line("write_victim", InChild([&] {
         int fd = ::open(victim.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
         if (fd < 0) return -1;
         int rc = ::write(fd, "x", 1) == 1 ? 0 : -1;
         ::close(fd);
         return rc;
       }));
  Line("truncate_victim", InChild([&] { return ::truncate(victim.c_str(), 0); }));
  Line("create_beside", InChild([&] { return write_new(beside + "/created-by-exec"); }));
  Line("mkdir_beside", InChild([&] { return ::mkdir((beside + "/dir-by-exec").c_str(), 0755); }));
  Line("symlink_beside",
       InChild([&] { return ::symlink("/etc/passwd", (beside + "/link-by-exec").c_str()); }));
  Line("rename_victim", InChild([&] {  // and back, so the unlink below has its target
         const std::string moved = beside + "/renamed-by-exec";
         if (::rename(victim.c_str(), moved.c_str()) != 0) return -1;
         return ::rename(moved.c_str(), victim.c_str());
       }));
  Line("unlink_victim", InChild([&] { return ::unlink(victim.c_str()); }));
  Line("write_devnull", InChild([] {
         int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
         if (fd < 0) return -1;
         int rc = ::write(fd, "x", 1) == 1 ? 0 : -1;
         ::close(fd);
         return rc;
       }));
}

// `confine: {network: false}` tried from inside.
void Network() {
  auto open_socket = [](long family, int type, int protocol) {
    long fd = ::syscall(SYS_socket, family, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) return -1;
    ::close(static_cast<int>(fd));
    return 0;
  };
  Line("inet", InChild([&] { return open_socket(AF_INET, SOCK_STREAM, 0); }));
  Line("inet6", InChild([&] { return open_socket(AF_INET6, SOCK_DGRAM, 0); }));
  Line("netlink", InChild([&] { return open_socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE); }));
  // The kernel reads the family as an int: upper register bits must not help.
  Line("inet_upper_bits",
       InChild([&] { return open_socket((1L << 32) | AF_INET, SOCK_STREAM, 0); }));
  Line("unix", InChild([&] { return open_socket(AF_UNIX, SOCK_STREAM, 0); }));
  Line("unix_pair", InChild([] {
         int sv[2];
         if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
         ::close(sv[0]);
         ::close(sv[1]);
         return 0;
       }));
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: exec_attacker tiocsti|devices|proc|read|handle|link|pid REPORT ...\n");
    std::fprintf(stderr, "usage: exec_attacker tiocsti|devices|proc|confine|network REPORT ...\n");
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
  } else if (mode == "read" && argc >= 5) {
    Read(argv[3], std::vector<std::string>(argv + 4, argv + argc));
  } else if (mode == "handle" && argc == 6) {
    Handle(argv[3], argv[4], argv[5]);
  } else if (mode == "link" && argc == 6) {
    Link(argv[3], argv[4], argv[5]);
  } else if (mode == "pid" && (argc == 3 || argc == 4)) {
    Pid(argc == 4 && std::string(argv[3]) == "kill");
  } else if (mode == "confine" && argc == 5) {
    Confine(argv[3], argv[4]);
  } else if (mode == "network") {
    Network();
  } else {
    std::fprintf(stderr, "exec_attacker: bad arguments for %s\n", mode.c_str());
    return 2;
  }
  Line("done", "1");
  return 0;
}
