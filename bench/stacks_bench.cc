// Stacks compiler benchmark (issue 4 targets):
//  - load + compile time per envoy for synthetic fleets of 1k and 10k envoys
//    (20 resources and 10 secret references per envoy) must stay flat:
//    per-envoy(10k) / per-envoy(1k) <= 12;
//  - compile must cost no more than 3x a bare yaml-cpp parse of the same
//    files, measured in the same run.
// Prints the figures and ratios; exits 1 when a target is missed. Each phase
// is the best of several repetitions (the machine is shared).
//
//   build/bench/stacks_bench [--reps N]
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common/strings.h"
#include "server/stacks.h"
#include "tests/support/fake_backend.h"

namespace {

using Clock = std::chrono::steady_clock;
using Files = std::map<std::string, std::string>;

constexpr int kCrates = 5;
constexpr int kResourcesPerCrate = 4;  // 20 resources per envoy
constexpr int kRefsPerEnvoy = 10;

std::string Pad(int n) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%05d", n);
  return buf;
}

// One rule per envoy (exact name), each with 10 reference-holding vars; five
// shared crates whose 20 resources use all ten vars, the envoy name and
// plain vars.
Files MakeFleet(int envoys, vigo::testing::FakeBackend* backend) {
  Files files;
  std::string ev = "envoys:\n";
  for (int e = 0; e < envoys; ++e) {
    std::string name = "host-" + Pad(e);
    vigo::StrAppend(&ev, "  - match: \"", name,
                    "\"\n    environment: production\n    roles: [app]\n",
                    "    vars:\n      port: \"", 8000 + e % 1000, "\"\n");
    for (int k = 0; k < kRefsPerEnvoy; ++k) {
      std::string path = vigo::StrCat("fleet/", name, "/s", k);
      vigo::StrAppend(&ev, "      s", k, ": \"secret:", path, "\"\n");
      backend->Put(path, "bench-value");
    }
  }
  files["envoys.vgo"] = ev;
  files["roles.vgo"] = "roles:\n  app:\n    configcrates: [c0, c1, c2, c3, c4]\n";
  files["environments.vgo"] = "env:\n  production:\n    vars:\n      region: eu-west\n";
  int ref = 0;
  for (int c = 0; c < kCrates; ++c) {
    std::string crate = vigo::StrCat("configcrate: c", c, "\nvars:\n  user: app\nresources:\n");
    for (int r = 0; r < kResourcesPerCrate; ++r) {
      std::string rname = vigo::StrCat("c", c, "-r", r);
      if (r == 3) {
        vigo::StrAppend(&crate, "  - name: ", rname, "\n    type: exec\n",
                        "    command: [\"/usr/bin/reload\", \"--unit\", \"", rname, "\"]\n",
                        "    stdin: \"{{ .Vars.s", ref++ % kRefsPerEnvoy, " }}\"\n",
                        "    depends_on: [c", c, "-r0]\n");
      } else if (r == 2) {
        vigo::StrAppend(&crate, "  - name: ", rname, "\n    type: directory\n",
                        "    target_path: /var/lib/", rname, "\n    mode: \"0750\"\n");
      } else {
        vigo::StrAppend(&crate, "  - name: ", rname, "\n    type: file\n",
                        "    target_path: \"/etc/", rname, "/{{ .Envoy.Name }}.conf\"\n",
                        "    mode: \"0640\"\n    owner: root\n    group: root\n",
                        "    content: |\n",
                        "      # managed by vigo for {{ .Envoy.Name }} in {{ .Vars.region }}\n",
                        "      user = {{ .Vars.user }}\n      port = {{ .Vars.port }}\n",
                        "      secret = {{ .Vars.s", ref++ % kRefsPerEnvoy, " }}\n");
      }
    }
    files[vigo::StrCat("configcrates/c", c, ".vgo")] = crate;
  }
  return files;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Result {
  int envoys = 0;
  size_t bytes = 0;
  double parse = 1e9, load = 1e9, compile = 1e9;
};

Result Measure(int envoys, int reps) {
  vigo::testing::FakeBackend backend;
  Files files = MakeFleet(envoys, &backend);
  Result r;
  r.envoys = envoys;
  for (const auto& [name, text] : files) r.bytes += text.size();
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = Clock::now();
    size_t nodes = 0;
    for (const auto& [name, text] : files) nodes += YAML::Load(text).size();
    auto t1 = Clock::now();
    auto stacks = vigo::server::Stacks::LoadFiles(files, backend, nullptr);
    auto t2 = Clock::now();
    if (!stacks.ok() || nodes == 0) {
      std::fprintf(stderr, "load failed: %s\n", std::string(stacks.status().message()).c_str());
      std::exit(1);
    }
    size_t refs = 0;
    for (int e = 0; e < envoys; ++e) {
      auto b = (*stacks)->Compile("host-" + Pad(e), 1);
      if (!b.ok() || b->bundle.resources_size() != kCrates * kResourcesPerCrate) {
        std::fprintf(stderr, "compile failed\n");
        std::exit(1);
      }
      refs += b->entitlement.size();
    }
    auto t3 = Clock::now();
    if (refs != static_cast<size_t>(envoys) * kRefsPerEnvoy) {
      std::fprintf(stderr, "unexpected entitlement count %zu\n", refs);
      std::exit(1);
    }
    if (backend.get_calls() != 0) std::exit(1);
    r.parse = std::min(r.parse, Seconds(t0, t1));
    r.load = std::min(r.load, Seconds(t1, t2));
    r.compile = std::min(r.compile, Seconds(t2, t3));
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = std::atoi(argv[++i]);
  }
  std::vector<Result> results = {Measure(1000, reps), Measure(10000, reps)};
  std::printf(
      "| envoys | input | bare yaml-cpp parse | Stacks::Load | Compile (all envoys) | "
      "load+compile per envoy | load+compile / parse |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  bool ok = true;
  for (const Result& r : results) {
    double per_envoy_us = (r.load + r.compile) / r.envoys * 1e6;
    double cost = (r.load + r.compile) / r.parse;
    std::printf("| %d | %.1f MiB | %.3f s | %.3f s | %.3f s | %.1f us | %.2fx |\n", r.envoys,
                static_cast<double>(r.bytes) / (1 << 20), r.parse, r.load, r.compile, per_envoy_us,
                cost);
    if (cost > 3.0) ok = false;
  }
  double per1k = (results[0].load + results[0].compile) / results[0].envoys;
  double per10k = (results[1].load + results[1].compile) / results[1].envoys;
  double flat = per10k / per1k;
  std::printf("\nper-envoy time 10k/1k: %.2fx (target <= 12x)\n", flat);
  std::printf("compile cost vs bare parse: %.2fx at 1k, %.2fx at 10k (target <= 3x)\n",
              (results[0].load + results[0].compile) / results[0].parse,
              (results[1].load + results[1].compile) / results[1].parse);
  if (flat > 12.0) ok = false;
  std::printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
