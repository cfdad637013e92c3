// Entitlement properties over random fleets, against the real binaries:
//  1. ResolveSecrets succeeds iff every requested ref is in the caller's
//     compiled bundle. The oracle is the generator's own model of which crate
//     references which secret, not the server's compiler.
//  2. Every denial writes exactly one `secret.resolve.denied` audit event.
//  3. After a reload that removes a ref from an envoy's bundle, the next
//     request for it is denied (no stale entitlement).
#include <rapidcheck.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/e2e_fixture.h"
#include "tests/support/rc_limited.h"

namespace vigo::testing {
namespace {

constexpr int kNumSecrets = 5;

std::string SecretPath(int i) { return "fleet/s" + std::to_string(i); }

// A random subset of {0, ..., n-1} (one coin per element, so any size fits).
std::set<int> Subset(int n) {
  auto coins = *rc::gen::container<std::vector<bool>>(static_cast<size_t>(n),
                                                      rc::gen::arbitrary<bool>());
  std::set<int> out;
  for (int i = 0; i < n; ++i) {
    if (coins[static_cast<size_t>(i)]) out.insert(i);
  }
  return out;
}

// One rule and one crate per envoy; crate i's file embeds refs to `refs`.
std::map<std::string, std::string> Stacks(const std::vector<std::set<int>>& refs) {
  std::string envoys = "envoys:\n";
  std::map<std::string, std::string> files;
  for (size_t i = 0; i < refs.size(); ++i) {
    std::string n = std::to_string(i);
    envoys += "  - match: \"env-" + n + "\"\n    configcrates: [crate" + n + "]\n";
    std::string content;
    for (int r : refs[i]) content += "k" + std::to_string(r) + " = secret:" + SecretPath(r) + "\\n";
    if (content.empty()) content = "no secrets here\\n";
    files["configcrates/crate" + n + ".vgo"] =
        "configcrate: crate" + n +
        "\nresources:\n  - name: f" + n + "\n    type: file\n    target_path: /etc/f" + n +
        "\n    content: \"" + content + "\"\n";
  }
  files["envoys.vgo"] = envoys;
  return files;
}

TEST(EntitlementProperty, ResolveSucceedsIffEntitledAndDenialsAreAuditedOnce) {
  CheckLimited(6, [] {
    const int num_envoys = *rc::gen::inRange(2, 4);
    std::vector<std::set<int>> refs(static_cast<size_t>(num_envoys));
    for (auto& s : refs) s = Subset(kNumSecrets);
    E2eFleet fleet;
    RC_ASSERT(fleet.Init());
    for (int i = 0; i < kNumSecrets; ++i) {
      RC_ASSERT(fleet.SetSecret(SecretPath(i), "value-" + std::to_string(i) + "-x9Qz"));
    }
    fleet.WriteStacks(Stacks(refs));
    RC_ASSERT(fleet.StartServer());
    for (int i = 0; i < num_envoys; ++i) RC_ASSERT(fleet.IssueEnvoy("env-" + std::to_string(i)));

    const int requests = *rc::gen::inRange(3, 7);
    for (int q = 0; q < requests; ++q) {
      const int e = *rc::gen::inRange(0, num_envoys);
      // Refs to ask for: a random non-empty mix of existing and missing paths.
      // kNumSecrets stands for a path that does not exist.
      std::set<int> asked = Subset(kNumSecrets + 1);
      if (asked.empty()) asked.insert(*rc::gen::inRange(0, kNumSecrets + 1));
      std::vector<std::string> paths;
      bool entitled = true;
      for (int r : asked) {
        paths.push_back(r == kNumSecrets ? "fleet/missing" : SecretPath(r));
        if (r == kNumSecrets || refs[static_cast<size_t>(e)].count(r) == 0) entitled = false;
      }
      const int denied_before = fleet.CountAudit("secret.resolve.denied");
      RunResult res = fleet.Probe("env-" + std::to_string(e), paths);
      const int denied_after = fleet.CountAudit("secret.resolve.denied");
      RC_TAG(entitled ? "entitled" : "not entitled");
      if (entitled) {
        RC_ASSERT(res.exit_code == 0);
        RC_ASSERT(denied_after == denied_before);
      } else {
        RC_ASSERT(res.exit_code == 5);  // PERMISSION_DENIED, same for missing and foreign
        RC_ASSERT(denied_after == denied_before + 1);
      }
    }
  });
}

TEST(EntitlementProperty, ReloadThatRemovesARefRevokesIt) {
  CheckLimited(4, [] {
    std::vector<std::set<int>> refs = {Subset(kNumSecrets), {}};
    if (refs[0].empty()) refs[0].insert(*rc::gen::inRange(0, kNumSecrets));
    E2eFleet fleet;
    RC_ASSERT(fleet.Init());
    for (int i = 0; i < kNumSecrets; ++i) {
      RC_ASSERT(fleet.SetSecret(SecretPath(i), "value-" + std::to_string(i) + "-k2Lp"));
    }
    fleet.WriteStacks(Stacks(refs));
    RC_ASSERT(fleet.StartServer());
    RC_ASSERT(fleet.IssueEnvoy("env-0"));
    const int removed = *rc::gen::elementOf(std::vector<int>(refs[0].begin(), refs[0].end()));
    RC_ASSERT(fleet.Probe("env-0", {SecretPath(removed)}).exit_code == 0);

    refs[0].erase(removed);
    fleet.WriteStacks(Stacks(refs));
    RunResult reload = fleet.Cli({"server", "reload"});
    RC_ASSERT(reload.exit_code == 0);
    RC_ASSERT(fleet.Probe("env-0", {SecretPath(removed)}).exit_code == 5);
    for (int r : refs[0]) RC_ASSERT(fleet.Probe("env-0", {SecretPath(r)}).exit_code == 0);
  });
}

}  // namespace
}  // namespace vigo::testing
