// The link graph enforces the privilege split: the worker must not be able to
// reach the network, TLS keys or the vault, even if compromised, because the
// code to do so is not in its address space. Checked on the built binary
// (what actually ships), two ways:
//   1. readelf -d: no NEEDED shared library from the banned list;
//   2. nm: no symbol (defined or referenced) from a banned namespace/prefix,
//      which also catches static linking.
// Why each ban matters:
//   libgrpc*, libgpr, libupb, libaddress_sorting, libcares: the gRPC stack; a
//       worker that can speak gRPC can talk to the server with the agent's
//       identity or exfiltrate values;
//   libssl: TLS (client key handling, network crypto). libcrypto is allowed
//       (hashes and the sealed-value primitives the worker legitimately uses);
//   libsqlite3: the server's database (audit chain, envoys);
//   libcurl: HTTP, the isopass vault backend's transport;
//   libyaml-cpp: the server's stack loader; the worker receives compiled
//       bundles only, never parses operator config;
//   vigo::server::, vigo::broker::: the vault and the credential holder.
#include <cstdio>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/test_env.h"

namespace vigo {
namespace {

const std::vector<std::string> kBannedLibs = {
    "libgrpc", "libgpr",     "libupb",  "libaddress_sorting", "libcares",
    "libssl.", "libsqlite3", "libcurl", "libyaml-cpp"};

// Demangled names or C symbol prefixes that must not appear.
const std::regex kBannedSymbol(
    R"((^|[^A-Za-z0-9_:])(grpc::|grpc_|gpr_|SSL_|sqlite3_|curl_|YAML::|vigo::server::|vigo::broker::))");

std::vector<std::string> BannedNeeded(const std::string& binary) {
  testing::RunResult r = testing::Run({"/usr/bin/readelf", "-d", binary});
  EXPECT_EQ(r.exit_code, 0) << "readelf -d " << binary << ": " << r.err;
  std::vector<std::string> hits;
  std::istringstream in(r.out);
  std::string line;
  int needed = 0;
  while (std::getline(in, line)) {
    if (line.find("(NEEDED)") == std::string::npos) continue;
    ++needed;
    for (const std::string& lib : kBannedLibs) {
      if (line.find("[" + lib) != std::string::npos) hits.push_back(line);
    }
  }
  EXPECT_GT(needed, 0) << "no NEEDED entries parsed from " << binary;
  return hits;
}

std::vector<std::string> BannedSymbols(const std::string& binary, bool dynamic) {
  std::vector<std::string> argv = {"/usr/bin/nm", "-C"};
  if (dynamic) argv.push_back("-D");
  argv.push_back(binary);
  testing::RunResult r = testing::Run(argv);
  EXPECT_EQ(r.exit_code, 0) << "nm " << binary << ": " << r.err;
  std::vector<std::string> hits;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    // "<addr> <type> <name>" or "         U <name>"
    size_t type_pos = line.find_first_not_of(' ', line.find(' '));
    if (line.size() < 19 || type_pos == std::string::npos) continue;
    std::string name = line.substr(std::min(line.size(), size_t{19}));
    if (std::regex_search(name, kBannedSymbol)) hits.push_back(name);
  }
  return hits;
}

std::string Join(const std::vector<std::string>& v, size_t max = 15) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < max; ++i) out += "  " + v[i] + "\n";
  if (v.size() > max) out += "  ... (" + std::to_string(v.size() - max) + " more)\n";
  return out;
}

TEST(LinkGraphTest, WorkerNeedsNoBannedLibrary) {
  const std::string worker = testing::BinPath("vigo-worker").string();
  ASSERT_TRUE(std::filesystem::exists(worker)) << worker << " missing: build vigo-worker first";
  std::vector<std::string> hits = BannedNeeded(worker);
  EXPECT_TRUE(hits.empty()) << "vigo-worker links a banned library (see this file's header):\n"
                            << Join(hits);
}

TEST(LinkGraphTest, WorkerHasNoBannedSymbols) {
  const std::string worker = testing::BinPath("vigo-worker").string();
  ASSERT_TRUE(std::filesystem::exists(worker)) << worker << " missing: build vigo-worker first";
  std::vector<std::string> hits = BannedSymbols(worker, /*dynamic=*/false);
  std::vector<std::string> dyn = BannedSymbols(worker, /*dynamic=*/true);
  hits.insert(hits.end(), dyn.begin(), dyn.end());
  EXPECT_TRUE(hits.empty()) << "vigo-worker contains or references banned code:\n" << Join(hits);
}

// Controls: the checks do flag a binary that really has the dependency.
TEST(LinkGraphTest, ChecksFlagGrpcItself) {
  const std::string grpcpp = "/usr/lib/x86_64-linux-gnu/libgrpc++.so";
  ASSERT_TRUE(std::filesystem::exists(grpcpp));
  EXPECT_FALSE(BannedNeeded(grpcpp).empty()) << "libgrpc++ NEEDED libgrpc: the check is blind";
  EXPECT_FALSE(BannedSymbols(grpcpp, /*dynamic=*/true).empty())
      << "libgrpc++ exports grpc:: symbols: the check is blind";
}

TEST(LinkGraphTest, SymbolPatternMatchesWhatItShould) {
  EXPECT_TRUE(std::regex_search("grpc::Channel::~Channel()", kBannedSymbol));
  EXPECT_TRUE(std::regex_search("vtable for grpc::ClientContext", kBannedSymbol));
  EXPECT_TRUE(std::regex_search("vigo::server::Vault::Get(std::string const&)", kBannedSymbol));
  EXPECT_TRUE(std::regex_search("SSL_CTX_new@OPENSSL_3.0.0", kBannedSymbol));
  EXPECT_TRUE(std::regex_search("sqlite3_open_v2", kBannedSymbol));
  EXPECT_FALSE(std::regex_search("EVP_sha256@OPENSSL_3.0.0", kBannedSymbol));
  EXPECT_FALSE(std::regex_search("vigo::worker::Apply()", kBannedSymbol));
  EXPECT_FALSE(std::regex_search("my_grpc_like()", kBannedSymbol));
}

}  // namespace
}  // namespace vigo
