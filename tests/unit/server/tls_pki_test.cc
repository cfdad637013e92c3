#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <utility>

#include "gtest/gtest.h"
#include "server/tls/pki.h"
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

// Issue 13.15: a certificate must not outlive the CA that signed it.
TEST_F(PkiTest, ClientCertificateThatWouldOutliveTheCaIsRefusedAndNothingWritten) {
  auto ca_info = ReadCertInfo(ca_.cert);
  ASSERT_TRUE(ca_info.ok());
  const int64_t ca_left = ca_info->not_after_unix - ::time(nullptr);
  ASSERT_GT(ca_left, 0);
  auto longer = IssueClientCert(ca_, dir_.path() / "long.pem", dir_.path() / "long.key", "web-1",
                                std::chrono::seconds(ca_left + 24 * 3600));
  ASSERT_EQ(longer.status().code(), absl::StatusCode::kFailedPrecondition) << longer.status();
  EXPECT_NE(longer.status().message().find("outlive the CA"), std::string::npos)
      << longer.status();
  EXPECT_NE(longer.status().message().find(ca_.cert.string()), std::string::npos)
      << "names the CA file: " << longer.status();
  EXPECT_FALSE(fs::exists(dir_.path() / "long.pem"));
  EXPECT_FALSE(fs::exists(dir_.path() / "long.key"));
  // Up to the CA's remaining lifetime is fine, and ends no later than the CA.
  auto within = IssueClientCert(ca_, dir_.path() / "ok.pem", dir_.path() / "ok.key", "web-1",
                                std::chrono::seconds(ca_left - 3600));
  ASSERT_TRUE(within.ok()) << within.status();
  EXPECT_LE(within->not_after_unix, ca_info->not_after_unix);
}

// A self-signed CA valid for `days` (CreateCa always makes 10 years).
void WriteShortLivedCa(const CaFiles& out, int days) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  ASSERT_NE(key, nullptr);
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
  X509_gmtime_adj(X509_getm_notBefore(cert), -300);
  X509_gmtime_adj(X509_getm_notAfter(cert), static_cast<long>(days) * 86400);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             static_cast<const unsigned char*>(static_cast<const void*>("Short CA")), -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  X509_set_pubkey(cert, key);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"}}) {
    X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
    ASSERT_NE(ext, nullptr);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  ASSERT_GT(X509_sign(cert, key, EVP_sha256()), 0);
  FILE* f = std::fopen(out.cert.c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_X509(f, cert);
  std::fclose(f);
  f = std::fopen(out.key.c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  ::chmod(out.key.c_str(), 0600);
  X509_free(cert);
  EVP_PKEY_free(key);
}

TEST(PkiShortCaTest, ServerCertificateIsCappedAtTheCaAndClientCertificateIsRefused) {
  TempDir dir;
  CaFiles ca{dir.path() / "ca.pem", dir.path() / "ca.key"};
  WriteShortLivedCa(ca, 30);
  auto ca_info = ReadCertInfo(ca.cert);
  ASSERT_TRUE(ca_info.ok()) << ca_info.status();
  auto srv = IssueServerCert(ca, dir.path() / "server.pem", dir.path() / "server.key", "h");
  ASSERT_TRUE(srv.ok()) << srv.status();
  EXPECT_EQ(srv->not_after_unix, ca_info->not_after_unix) << "2 years capped at the CA's 30 days";
  auto client = IssueClientCert(ca, dir.path() / "c.pem", dir.path() / "c.key", "web-1",
                                std::chrono::hours(24 * 31));
  EXPECT_EQ(client.status().code(), absl::StatusCode::kFailedPrecondition) << client.status();
  EXPECT_FALSE(fs::exists(dir.path() / "c.key"));
  auto ok = IssueClientCert(ca, dir.path() / "c.pem", dir.path() / "c.key", "web-1",
                            std::chrono::hours(24 * 29));
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(PkiValidityTest, ValidityIsCheckedAgainstTheCaRemainingLifetime) {
  const int64_t now = 2'000'000'000;
  CertInfo ca;
  ca.not_after_unix = now + 2 * 86400 + 600;  // two days and ten minutes left
  EXPECT_TRUE(CheckValidityWithinCa(ca, std::chrono::hours(24), now).ok());
  EXPECT_TRUE(CheckValidityWithinCa(ca, std::chrono::hours(48), now).ok());
  absl::Status three = CheckValidityWithinCa(ca, std::chrono::hours(72), now);
  EXPECT_EQ(three.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(three.message().find("longest validity allowed now is 2 days"), std::string::npos)
      << three;
  EXPECT_NE(three.message().find("2033-05-20T"), std::string::npos)
      << "names the CA's notAfter: " << three;
  ca.not_after_unix = now - 1;
  absl::Status expired = CheckValidityWithinCa(ca, std::chrono::hours(1), now);
  EXPECT_EQ(expired.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(expired.message().find("expired"), std::string::npos) << expired;
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

TEST_F(PkiTest, ClientCertIsRefusedForANameTheStacksWouldRefuse) {
  // One grammar (vocab/envoy_name.h): the PKI used to accept a name holding
  // the secret marker's prefix, which the stacks refuse to compile for, so
  // the envoy got a certificate and never a bundle.
  for (const std::string& name : {std::string("a__VIGO_SECRET__b"), std::string(65, 'a')}) {
    auto c = IssueClientCert(ca_, dir_.path() / "x.pem", dir_.path() / "x.key", name,
                             std::chrono::hours(24));
    EXPECT_TRUE(absl::IsInvalidArgument(c.status())) << name << ": " << c.status();
    EXPECT_FALSE(std::filesystem::exists(dir_.path() / "x.key")) << name;
  }
}

}  // namespace
}  // namespace vigo::server::tls
