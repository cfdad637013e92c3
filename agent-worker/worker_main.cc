#include "agent-worker/worker_main.h"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "agent-worker/worker_lockdown.h"
#include "agent-worker/worker_session.h"
#include "common/args.h"
#include "common/exit_codes.h"
#include "common/ipc/agent_ipc.h"
#include "common/log.h"
#include "sandbox/lockdown.h"

namespace vigo::worker {

int WorkerMain(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  ArgSpec spec{"vigo-worker [flags] (started by vigo only)",
               "The Vigo apply worker. Talks to the broker on fd 3 only.",
               {{"version", false, "print the version"},
                {"apply-root", true, "prefix for every target_path, creates and cwd"},
                {"worker-user", true, "user to apply as (lockdown)"},
                {"secret-file-dir", true, "directory for exec secret_file temp files"},
                {"log-level", true, "trace|debug|info|warn|error"},
                {"hide", true, "colon-separated paths covered in the worker's mount namespace"},
                {"insecure-skip-lockdown", true, "comma-separated lockdown steps to skip"},
                {"insecure-allow-unlocked-memory", false, "run without locked memory"}},
               0, 0};
  auto parsed = ParseArgs(spec, args);
  if (!parsed.ok()) {
    std::fprintf(stderr, "vigo-worker: %s\n", std::string(parsed.status().message()).c_str());
    return kExitUsage;
  }
  if (parsed->help()) {
    std::fputs(HelpText(spec).c_str(), stdout);
    return kExitOk;
  }
  if (parsed->Has("version")) {
    std::printf("vigo-worker %s\n", kVigoVersion);
    return kExitOk;
  }
  if (auto lvl = parsed->Get("log-level")) {
    auto level = ParseLogLevel(*lvl);
    if (!level.ok()) {
      std::fprintf(stderr, "vigo-worker: --log-level: %s\n",
                   std::string(level.status().message()).c_str());
      return kExitUsage;
    }
    SetLogLevel(*level);
  }
  if (absl::Status s = ipc::CheckSeqPacketSocket(ipc::kWorkerSocketFd); !s.ok()) {
    std::fprintf(stderr, "vigo-worker: must be started by vigo (%s)\n",
                 std::string(s.message()).c_str());
    return kExitUsage;
  }
  WorkerLockdownOptions lo;
  lo.socket_fd = ipc::kWorkerSocketFd;
  lo.run_as_user = parsed->Get("worker-user").value_or("");
  if (auto h = parsed->Get("hide")) {
    size_t start = 0;
    while (start <= h->size()) {
      size_t end = h->find(':', start);
      if (end == std::string::npos) end = h->size();
      if (end > start) lo.hidden_paths.push_back(h->substr(start, end - start));
      start = end + 1;
    }
  }
  if (auto k = parsed->Get("insecure-skip-lockdown")) {
    size_t start = 0;
    while (start <= k->size()) {
      size_t end = k->find(',', start);
      if (end == std::string::npos) end = k->size();
      if (end > start) lo.insecure_skip.insert(k->substr(start, end - start));
      start = end + 1;
    }
  }
  lo.insecure_allow_unlocked_memory = parsed->Has("insecure-allow-unlocked-memory");
  // The exec-child filter is compiled here, before the worker's own filter
  // is installed (compiling is plain userspace work, but doing it first keeps
  // libseccomp's probing out of the worker table's concerns). Every exec
  // resource loads it in the child before execve.
  auto seal = sandbox::PrepareExecChildSeal();
  if (!seal.ok()) {
    Log(LogLevel::kError, "exec-child seccomp layer could not be prepared",
        {{"error", seal.status()}});
    return kExitError;
  }
  // The applier's layer likewise (ApplierSpec::no_new_process).
  auto applier_filter = sandbox::PrepareApplierFilter();
  if (!applier_filter.ok()) {
    Log(LogLevel::kError, "applier seccomp layer could not be prepared",
        {{"error", applier_filter.status()}});
    return kExitError;
  }
  auto attestation = LockDownWorkerProcess(lo);
  if (!attestation.ok()) {
    Log(LogLevel::kError, "worker lockdown failed", {{"error", attestation.status()}});
    return kExitError;
  }
  std::string hello;
  attestation->SerializeToString(&hello);

  ApplyOptions opts;
  opts.apply_root = parsed->Get("apply-root").value_or("");
  opts.secret_file_dir = parsed->Get("secret-file-dir").value_or("");
  opts.exec_child_seal = std::make_shared<const sandbox::ExecChildSeal>(std::move(*seal));
  ApplierSpec applier;
  applier.apply = opts;
  applier.landlock = lo.insecure_skip.count(sandbox::kStepLandlock) == 0;
  applier.no_new_process = std::make_shared<const sandbox::BpfProgram>(std::move(*applier_filter));
  WorkerSession session(ipc::Channel(sandbox::UniqueFd(ipc::kWorkerSocketFd)), applier);
  absl::Status s = session.Run(hello);
  if (!s.ok()) {
    Log(LogLevel::kError, "worker session ended", {{"error", s}});
    return kExitError;
  }
  return kExitOk;
}

}  // namespace vigo::worker
