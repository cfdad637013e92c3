#include "server/tls/pki.h"

#include <sys/stat.h>

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/support/test_env.h"

namespace vigo::server::tls {
namespace {

namespace fs = std::filesystem;
using vigo::testing::TempDir;

class PkiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = {dir_.path() / "ca.pem", dir_.path() / "ca.key"};
    ASSERT_TRUE(CreateCa(ca_, "Test CA").ok());
  }
  TempDir dir_;
  CaFiles ca_;
};

mode_t Mode(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 0777;
}

TEST_F(PkiTest, CaServerAndClientCertificates) {
  EXPECT_EQ(Mode(ca_.key), 0600u);
  auto ca_info = ReadCertInfo(ca_.cert);
  ASSERT_TRUE(ca_info.ok());
  EXPECT_EQ(ca_info->common_name, "Test CA");
  auto srv = IssueServerCert(ca_, dir_.path() / "server.pem", dir_.path() / "server.key", "vigo.lan");
  ASSERT_TRUE(srv.ok()) << srv.status();
  EXPECT_EQ(srv->common_name, "vigo.lan");
  EXPECT_EQ(Mode(dir_.path() / "server.key"), 0600u);
  EXPECT_TRUE(CheckServerTlsMaterial(dir_.path()).ok());

  auto c1 = IssueClientCert(ca_, dir_.path() / "c1.pem", dir_.path() / "c1.key", "web-1",
                            std::chrono::hours(24));
  auto c2 = IssueClientCert(ca_, dir_.path() / "c2.pem", dir_.path() / "c2.key", "web-1",
                            std::chrono::hours(24));
  ASSERT_TRUE(c1.ok() && c2.ok());
  EXPECT_EQ(c1->common_name, "web-1");
  EXPECT_EQ(c1->fingerprint_sha256.size(), 64u);
  EXPECT_NE(c1->fingerprint_sha256, c2->fingerprint_sha256);
  EXPECT_NE(c1->serial_hex, c2->serial_hex);
  EXPECT_NEAR(static_cast<double>(c1->not_after_unix - c1->not_before_unix), 86400.0 + 300, 5);
  auto again = CertInfoFromPem(vigo::testing::ReadFileOrEmpty(dir_.path() / "c1.pem"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->fingerprint_sha256, c1->fingerprint_sha256);
}

TEST_F(PkiTest, NeverOverwrites) {
  EXPECT_EQ(CreateCa(ca_, "Again").code(), absl::StatusCode::kAlreadyExists);
  vigo::testing::WriteFileOrDie(dir_.path() / "k.key", "keep me");
  auto r = IssueClientCert(ca_, dir_.path() / "c.pem", dir_.path() / "k.key", "web-1",
                           std::chrono::hours(1));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(vigo::testing::ReadFileOrEmpty(dir_.path() / "k.key"), "keep me");
  EXPECT_FALSE(fs::exists(dir_.path() / "c.pem"));
}

TEST_F(PkiTest, TlsMaterialChecksNameTheFile) {
  ASSERT_TRUE(
      IssueServerCert(ca_, dir_.path() / "server.pem", dir_.path() / "server.key", "h").ok());
  // Key of another certificate.
  TempDir other;
  CaFiles ca2{other.path() / "ca.pem", other.path() / "ca.key"};
  ASSERT_TRUE(CreateCa(ca2, "Other").ok());
  ASSERT_TRUE(IssueServerCert(ca2, other.path() / "server.pem", other.path() / "server.key", "h").ok());
  fs::copy_file(other.path() / "server.key", dir_.path() / "server.key",
                fs::copy_options::overwrite_existing);
  absl::Status st = CheckServerTlsMaterial(dir_.path());
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("server.key"), std::string::npos) << st;
  // Certificate of another CA.
  fs::copy_file(other.path() / "server.pem", dir_.path() / "server.pem",
                fs::copy_options::overwrite_existing);
  st = CheckServerTlsMaterial(dir_.path());
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("ca.pem"), std::string::npos) << st;
  // Key readable by others.
  fs::copy_file(other.path() / "ca.pem", dir_.path() / "ca.pem", fs::copy_options::overwrite_existing);
  ASSERT_TRUE(CheckServerTlsMaterial(dir_.path()).ok());
  ::chmod((dir_.path() / "server.key").c_str(), 0644);
  st = CheckServerTlsMaterial(dir_.path());
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("0600"), std::string::npos) << st;
}

TEST(EnvoyNameTest, Validation) {
  for (const char* ok : {"web-1", "a", "db01.prod", "x_y", "A9"}) {
    EXPECT_TRUE(ValidateEnvoyName(ok).ok()) << ok;
  }
  for (const char* bad : {"", "-web", ".x", "a/b", "a b", "web*", "a\nb", "é"}) {
    EXPECT_FALSE(ValidateEnvoyName(bad).ok()) << bad;
  }
  EXPECT_FALSE(ValidateEnvoyName(std::string(65, 'a')).ok());
  EXPECT_TRUE(ValidateEnvoyName(std::string(64, 'a')).ok());
  EXPECT_FALSE(ValidateEnvoyName(std::string("a\0b", 3)).ok());
}

}  // namespace
}  // namespace vigo::server::tls
