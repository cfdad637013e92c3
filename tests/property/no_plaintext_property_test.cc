// No plaintext anywhere: random stacks, envoys and high-entropy canary values
// go through the real pipeline (vigosrv loader → bundles → gRPC over mTLS on
// loopback → vigo broker → vigo-worker → results → SQLite) with both sides at
// trace level, under a randomly chosen failure (backend error, missing
// secret, killed worker, stale epoch, exec timeout, exec echoing its stdin,
// foreign ref). Then every sink is scanned for
// each canary in raw, hex, base64, URL- and JSON-escaped form and for any
// 8-byte substring (tests/support FindCanaries):
//   server log and stdout, the data root (SQLite file and WAL, stacks, run/),
//   agent logs and state dirs, bundles and run results and the audit log as
//   the CLI prints them, every CLI / probe output and error message, the
//   environ and cmdline of vigosrv, of vigo-worker and of an exec child (the
//   child copies them into a capture file), exec output stored in results,
//   and /tmp, /var/tmp, /dev/shm.
// Allowed: only the target files under <apply-root>/etc/ and the stdin of the
// exec that asked for the value.
#include <rapidcheck.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/e2e_fixture.h"
#include "tests/support/rc_limited.h"

namespace vigo::testing {
namespace {

enum class Failure {
  kNone,
  kExecEchoesStdinAndFails,  // an exec prints its secret stdin and exits 1
  kExecTimesOut,             // an exec with a secret on stdin is killed by its timeout
  kStaleEpoch,               // a client asks with an old epoch
  kMissingSecret,            // the stacks reference a secret that is not in the vault
  kTamperedVaultFile,        // backend error: a vault file fails authentication
  kForeignRef,               // an envoy asks for another envoy's secret
  kKilledWorker,             // an exec child SIGKILLs vigo-worker mid-apply (values in memory)
};

rc::Gen<std::string> Canary() {
  // High entropy, with characters that escaping would change.
  static const std::string kChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=%\"\\ -_.~!?";
  return rc::gen::map(rc::gen::container<std::string>(24, rc::gen::elementOf(kChars)),
                      [](std::string s) { return "Cn" + s; });
}

std::string YamlQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

struct Fleet {
  std::vector<std::string> envoys;
  std::vector<std::string> paths;                // secret paths
  std::vector<std::string> values;               // canaries, same index
  std::map<std::string, std::vector<int>> uses;  // envoy -> secret indexes
};

std::map<std::string, std::string> BuildStacks(const Fleet& f, Failure failure) {
  std::map<std::string, std::string> files;
  std::string envoys = "envoys:\n";
  for (const std::string& e : f.envoys) {
    envoys += "  - match: " + YamlQuote(e) + "\n    configcrates: [crate-" + e + "]\n";
    const std::vector<int>& uses = f.uses.at(e);
    std::string crate = "configcrate: crate-" + e + "\nvars:\n";
    for (int i : uses) crate += "  v" + std::to_string(i) + ": \"secret:" + f.paths[i] + "\"\n";
    crate += "  plain: hello\n";
    crate += "resources:\n";
    crate += "  - name: etc-dir-" + e + "\n    type: directory\n    target_path: /etc/app\n";
    // A templated file mixing text and secrets (interpolation into a larger string).
    crate += "  - name: conf-" + e +
             "\n    type: file\n    target_path: /etc/app/app.conf\n"
             "    mode: \"0640\"\n    depends_on: [etc-dir-" +
             e +
             "]\n    content: |\n"
             "      plain = {{ .Vars.plain }}\n";
    for (int i : uses) {
      crate += "      s" + std::to_string(i) + " = {{ .Vars.v" + std::to_string(i) + " }}\n";
    }
    // A whole-file secret and an embedded reference.
    for (int i : uses) {
      crate += "  - name: whole" + std::to_string(i) + "-" + e +
               "\n    type: file\n    target_path: /etc/app/w" + std::to_string(i) +
               "\n    depends_on: [etc-dir-" + e + "]\n    content: \"secret:" + f.paths[i] +
               "\"\n";
    }
    // The exec child copies its own and its parent's (the worker's) environ and
    // cmdline into a capture file, which is scanned like any other sink.
    crate += "  - name: capture-" + e +
             "\n    type: exec\n    cwd: /capture\n"
             "    command: [\"/bin/sh\", \"-c\", \"cat /proc/self/environ /proc/self/cmdline "
             "/proc/$PPID/environ /proc/$PPID/cmdline > capture.txt 2>&1; true\"]\n";
    if (!uses.empty()) {
      const std::string& p = f.paths[static_cast<size_t>(uses[0])];
      if (failure == Failure::kExecEchoesStdinAndFails) {
        crate += "  - name: echo-fail-" + e + "\n    type: exec\n    stdin: \"secret:" + p +
                 "\"\n    command: [\"/bin/sh\", \"-c\", \"cat; cat >&2; echo; exit 1\"]\n";
      }
      if (failure == Failure::kKilledWorker) {
        // The worker is PID 1 of its own PID namespace, so a command cannot
        // signal it: the command says when the run holds values, and the test
        // kills the worker from the host (RunAgentAndKillWorker).
        crate += "  - name: kill-worker-" + e + "\n    type: exec\n    cwd: /capture\n    stdin: \"secret:" + p +
                 "\"\n    command: [\"/bin/sh\", \"-c\", \"cat >/dev/null; touch kill-me; "
                 "sleep 5\"]\n";
      }
      if (failure == Failure::kExecTimesOut) {
        crate += "  - name: slow-" + e +
                 "\n    type: exec\n    timeout: 1\n    stdin: \"secret:" + p +
                 "\"\n    command: [\"/bin/sh\", \"-c\", \"cat; sleep 30\"]\n";
      }
    }
    if (failure == Failure::kMissingSecret && e == f.envoys[0]) {
      crate += "  - name: missing-" + e +
               "\n    type: file\n    target_path: /etc/app/missing\n"
               "    content: \"secret:not/in/the/vault\"\n";
    }
    files["configcrates/crate-" + e + ".vgo"] = crate;
  }
  files["envoys.vgo"] = envoys;
  return files;
}

// The host pid of the vigo-worker applying to `apply_root` (its argv names
// it): other tests' workers may run at the same time and must not be hit.
pid_t FindWorker(const std::filesystem::path& apply_root) {
  const std::string want = "--apply-root=" + apply_root.string();
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string n = e.path().filename();
    if (n.empty() || n[0] < '0' || n[0] > '9') continue;
    std::string status = ReadFileOrEmpty(e.path() / "status");
    if (status.find("Name:\tvigo-worker\n") == std::string::npos) continue;
    std::string cmdline = ReadFileOrEmpty(e.path() / "cmdline");
    for (char& c : cmdline) c = c == '\0' ? '\n' : c;
    if (cmdline.find(want + "\n") == std::string::npos) continue;
    return static_cast<pid_t>(std::stol(n));
  }
  return -1;
}

// Runs the agent; when its exec resource creates `marker`, SIGKILLs the
// worker from outside (values are in its memory at that point).
RunResult RunAgentAndKillWorker(E2eFleet& fleet, const std::string& envoy,
                                const std::filesystem::path& marker) {
  std::atomic<bool> done{false};
  std::thread killer([&] {
    while (!done) {
      if (std::filesystem::exists(marker)) {
        if (pid_t w = FindWorker(fleet.ApplyRoot(envoy)); w > 0) ::kill(w, SIGKILL);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  RunResult r = fleet.RunAgent(envoy);
  done = true;
  killer.join();
  return r;
}

void AddProcFiles(pid_t pid, const std::filesystem::path& out) {
  for (const char* f : {"environ", "cmdline"}) {
    std::string text = ReadFileOrEmpty("/proc/" + std::to_string(pid) + "/" + f);
    WriteFileOrDie(out / (std::to_string(pid) + "." + f), text, 0600);
  }
}

// One fleet under one failure: runs it and asserts that no sink holds a canary.
void RunScenario(const Fleet& f, Failure failure) {
  const int num_secrets = static_cast<int>(f.values.size());

  E2eFleet fleet;
  RC_ASSERT(fleet.Init());
  const std::filesystem::path sinks = fleet.dir() / "sinks";
  std::filesystem::create_directories(sinks);
  std::string outputs;  // every CLI/agent/probe stdout+stderr (error messages included)
  auto keep = [&](const RunResult& r) { outputs += r.out + r.err; };

  for (int i = 0; i < num_secrets; ++i) RC_ASSERT(fleet.SetSecret(f.paths[i], f.values[i]));
  fleet.WriteStacks(BuildStacks(f, failure));
  keep(fleet.Cli({"config", "validate"}));

  if (failure == Failure::kMissingSecret) {
    RC_ASSERT(!fleet.StartServer());  // fail fast, one clear line
    outputs += fleet.last_error();
  } else {
    if (!fleet.StartServer()) RC_FAIL("vigosrv did not start: " + fleet.last_error());
    AddProcFiles(fleet.server_pid(), sinks);
    for (const std::string& e : f.envoys) RC_ASSERT(fleet.IssueEnvoy(e));
    if (failure == Failure::kTamperedVaultFile) {
      std::filesystem::path victim = fleet.root() / "secrets" / f.paths[0];
      std::string bytes = ReadFileOrEmpty(victim);
      RC_ASSERT(!bytes.empty());
      bytes[bytes.size() - 3] = static_cast<char>(bytes[bytes.size() - 3] ^ 0x10);
      WriteFileOrDie(victim, bytes, 0600);
    }
    for (const std::string& e : f.envoys) {
      std::filesystem::create_directories(fleet.ApplyRoot(e) / "capture");
      RunResult r = failure == Failure::kKilledWorker
                        ? RunAgentAndKillWorker(fleet, e, fleet.ApplyRoot(e) / "capture/kill-me")
                        : fleet.RunAgent(e);
      keep(r);
      if (failure == Failure::kKilledWorker)
        RC_ASSERT(r.exit_code != 0);  // a failed run, not a hang
      if (failure == Failure::kNone || failure == Failure::kStaleEpoch ||
          failure == Failure::kForeignRef) {
        RC_ASSERT(r.exit_code == 0);
        // The values did arrive where they belong.
        std::string conf = ReadFileOrEmpty(fleet.ApplyRoot(e) / "etc/app/app.conf");
        for (int i : f.uses.at(e)) RC_ASSERT(conf.find(f.values[i]) != std::string::npos);
        // Control: the scanner does see a canary where one is (the target
        // files), so an empty result below means absence, not blindness.
        RC_ASSERT(!FindCanaries(fleet.ApplyRoot(e) / "etc", f.values).empty());
      }
    }
    if (failure == Failure::kStaleEpoch) {
      RunResult r = fleet.Probe(f.envoys[0], {f.paths[0]}, /*epoch=*/0);
      keep(r);
      RC_ASSERT(r.exit_code == 6);  // FAILED_PRECONDITION
    }
    if (failure == Failure::kForeignRef) {
      RunResult r = fleet.Probe(f.envoys[1], f.paths);
      keep(r);
    }
    fleet.StopServer();
  }
  // What operators look at.
  for (const std::string& e : f.envoys) keep(fleet.Cli({"bundle", "show", "--envoy", e, "--json"}));
  RunResult runs = fleet.Cli({"runs", "list", "--json"});
  keep(runs);
  keep(fleet.Cli({"audit", "list", "--json"}));
  for (const std::string& e : f.envoys) {
    keep(vigo::testing::Run(
        {BinPath("vigo").string(), "status", "--state-dir", fleet.StateDir(e).string()}));
  }
  WriteFileOrDie(sinks / "outputs.txt", outputs, 0600);

  // Scan. Everything under the fleet dir except the intended targets.
  std::vector<std::string> hits;
  auto add = [&](std::vector<std::string> more) {
    hits.insert(hits.end(), more.begin(), more.end());
  };
  add(FindCanaries(fleet.root(), f.values));
  add(FindCanaries(sinks, f.values));
  add(FindCanariesIn(ReadFileOrEmpty(fleet.ServerLog()), "server.log", f.values));
  add(FindCanariesIn(ReadFileOrEmpty(fleet.dir() / "server.out"), "server.out", f.values));
  for (const std::string& e : f.envoys) {
    add(FindCanaries(fleet.StateDir(e), f.values));
    add(FindCanariesIn(ReadFileOrEmpty(fleet.AgentLog(e)), e + " agent log", f.values));
    add(FindCanaries(fleet.ApplyRoot(e) / "capture", f.values));
    add(FindCanaries(fleet.ApplyRoot(e) / "var", f.values));
  }
  for (const char* tmp : {"/var/tmp", "/dev/shm"}) add(FindCanaries(tmp, f.values));
  for (const auto& entry : std::filesystem::directory_iterator("/tmp")) {
    // Other tests' temp dirs hold other random canaries; ours is scanned above.
    if (entry.path() == fleet.dir()) continue;
    std::error_code ec;
    if (entry.is_regular_file(ec)) {
      add(FindCanariesIn(ReadFileOrEmpty(entry.path()), entry.path().string(), f.values));
    }
  }
  for (const std::string& h : hits) RC_LOG() << h << "\n";
  RC_ASSERT(hits.empty());
}

TEST(NoPlaintextProperty, NoCanaryInAnySinkUnderEveryFailure) {
  // Each random fleet (paths, canaries, which envoy uses what) runs under
  // every failure mode, so every mode is exercised on every run.
  CheckLimited(2, [] {
    Fleet f;
    const int num_secrets = *rc::gen::inRange(1, 4);
    for (int i = 0; i < num_secrets; ++i) {
      f.paths.push_back("app/s" + std::to_string(i));
      f.values.push_back(*Canary());
    }
    f.envoys = {"web-0", "web-1"};
    for (const std::string& e : f.envoys) {
      f.uses[e] = *rc::gen::container<std::vector<int>>(*rc::gen::inRange(1, num_secrets + 1),
                                                        rc::gen::inRange(0, num_secrets));
      std::sort(f.uses[e].begin(), f.uses[e].end());
      f.uses[e].erase(std::unique(f.uses[e].begin(), f.uses[e].end()), f.uses[e].end());
    }
    for (Failure failure :
         {Failure::kNone, Failure::kExecEchoesStdinAndFails, Failure::kExecTimesOut,
          Failure::kStaleEpoch, Failure::kMissingSecret, Failure::kTamperedVaultFile,
          Failure::kForeignRef, Failure::kKilledWorker}) {
      RunScenario(f, failure);
    }
  });
}

}  // namespace
}  // namespace vigo::testing
