// The local vault: file format, tamper detection, path safety, size limit,
// master key checks, rotation.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/vault/local_backend.h"
#include "server/vault/secret_file.h"
#include "server/vault/vault_crypto.h"
#include "tests/support/test_env.h"

namespace vigo::server {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using vigo::testing::ReadFileOrEmpty;
using vigo::testing::TempDir;
using vigo::testing::WriteFileOrDie;

sandbox::SecretBuffer Buf(std::string_view s) {
  auto b = sandbox::SecretBuffer::CopyFrom(vault::AsBytes(s));
  EXPECT_TRUE(b.ok());
  return std::move(b).value();
}

std::string Str(const sandbox::SecretBuffer& b) {
  auto r = b.Reveal();
  return std::string(r.begin(), r.end());
}

class VaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path() / "secrets";
    ASSERT_TRUE(vault::CreateMasterKey(dir_).ok());
    auto b = LocalBackend::Open(dir_);
    ASSERT_TRUE(b.ok()) << b.status();
    backend_ = std::move(b).value();
  }
  void FlipBit(const fs::path& file, size_t byte, int bit) {
    std::string data = ReadFileOrEmpty(file);
    ASSERT_LT(byte, data.size());
    data[byte] = static_cast<char>(data[byte] ^ (1 << bit));
    WriteFileOrDie(file, data);
  }
  TempDir tmp_;
  fs::path dir_;
  std::unique_ptr<LocalBackend> backend_;
};

TEST(SecretFileTest, RoundTripAndHeader) {
  auto key = vault::RandomSecret(32);
  ASSERT_TRUE(key.ok());
  auto file = vault::EncryptSecretFile(key->Reveal(), "a/b", 42, Buf("hello value"));
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->size(), vault::kSecretHeaderLen + 11 + 16);
  auto h = vault::ParseSecretFileHeader(*file, "a/b");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->format_version, 1);
  EXPECT_EQ(h->version, 42u);
  EXPECT_EQ(h->key_id, vault::KeyIdFor(key->Reveal()));
  auto v = vault::DecryptSecretFile(key->Reveal(), "a/b", *file);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(Str(*v), "hello value");
  // Two encryptions of the same value differ (random nonce).
  auto file2 = vault::EncryptSecretFile(key->Reveal(), "a/b", 42, Buf("hello value"));
  ASSERT_TRUE(file2.ok());
  EXPECT_NE(*file, *file2);
}

TEST(SecretFileTest, EveryHeaderAndBodyBitIsAuthenticated) {
  auto key = vault::RandomSecret(32);
  ASSERT_TRUE(key.ok());
  auto file = vault::EncryptSecretFile(key->Reveal(), "p", 1, Buf("v"));
  ASSERT_TRUE(file.ok());
  for (size_t i = 0; i < file->size(); ++i) {
    std::vector<uint8_t> f = *file;
    f[i] ^= 0x01;
    auto v = vault::DecryptSecretFile(key->Reveal(), "p", f);
    EXPECT_FALSE(v.ok()) << "byte " << i;
    EXPECT_TRUE(absl::IsDataLoss(v.status())) << "byte " << i << ": " << v.status();
  }
}

TEST(SecretFileTest, WrongKeyFails) {
  auto k1 = vault::RandomSecret(32);
  auto k2 = vault::RandomSecret(32);
  auto file = vault::EncryptSecretFile(k1->Reveal(), "p", 1, Buf("value"));
  auto v = vault::DecryptSecretFile(k2->Reveal(), "p", *file);
  EXPECT_TRUE(absl::IsDataLoss(v.status()));
}

TEST_F(VaultTest, SetGetRoundTrip) {
  auto v1 = backend_->Set("webapp/db_pw", Buf("s3cret-value"));
  ASSERT_TRUE(v1.ok()) << v1.status();
  auto got = backend_->Get("webapp/db_pw");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Str(*got), "s3cret-value");
  auto exists = backend_->Exists("webapp/db_pw");
  ASSERT_TRUE(exists.ok());
  EXPECT_TRUE(*exists);
  EXPECT_FALSE(*backend_->Exists("webapp/other"));
  auto ver = backend_->Version("webapp/db_pw");
  ASSERT_TRUE(ver.ok());
  EXPECT_EQ(*ver, *v1);
  // The version strictly increases on every write.
  auto v2 = backend_->Set("webapp/db_pw", Buf("new"));
  ASSERT_TRUE(v2.ok());
  EXPECT_GT(*v2, *v1);
  EXPECT_EQ(Str(*backend_->Get("webapp/db_pw")), "new");
  // The file is 0600, its directory 0700, and holds no plaintext.
  struct stat st;
  ASSERT_EQ(::stat((dir_ / "webapp/db_pw").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir_ / "webapp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(ReadFileOrEmpty(dir_ / "webapp/db_pw").find("new"), std::string::npos);
}

TEST_F(VaultTest, EmptyValueRoundTrips) {
  ASSERT_TRUE(backend_->Set("empty", sandbox::SecretBuffer()).ok());
  auto got = backend_->Get("empty");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), 0u);
}

TEST_F(VaultTest, MissingSecretIsNotFound) {
  auto got = backend_->Get("no/such");
  EXPECT_TRUE(absl::IsNotFound(got.status()));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("no/such"));
  EXPECT_TRUE(absl::IsNotFound(backend_->Delete("no/such")));
}

TEST_F(VaultTest, ListAndDelete) {
  ASSERT_TRUE(backend_->Set("a/x", Buf("1")).ok());
  ASSERT_TRUE(backend_->Set("a/y/z", Buf("2")).ok());
  ASSERT_TRUE(backend_->Set("b", Buf("3")).ok());
  auto all = backend_->List("");
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(*all, ::testing::ElementsAre("a/x", "a/y/z", "b"));
  EXPECT_THAT(*backend_->List("a/"), ::testing::ElementsAre("a/x", "a/y/z"));
  ASSERT_TRUE(backend_->Delete("a/y/z").ok());
  EXPECT_FALSE(fs::exists(dir_ / "a/y"));  // empty directory removed
  EXPECT_THAT(*backend_->List(""), ::testing::ElementsAre("a/x", "b"));
}

TEST_F(VaultTest, TamperedCiphertextIsDataLossNamingPath) {
  ASSERT_TRUE(backend_->Set("t/p", Buf("some value bytes")).ok());
  FlipBit(dir_ / "t/p", vault::kSecretHeaderLen + 3, 4);
  auto got = backend_->Get("t/p");
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("t/p"));
  EXPECT_THAT(std::string(got.status().message()), ::testing::Not(HasSubstr("some value")));
}

TEST_F(VaultTest, TruncatedFileIsDataLoss) {
  ASSERT_TRUE(backend_->Set("t/p", Buf("some value bytes")).ok());
  std::string data = ReadFileOrEmpty(dir_ / "t/p");
  for (size_t len : {size_t{0}, size_t{5}, size_t{39}, data.size() - 1}) {
    WriteFileOrDie(dir_ / "t/p", data.substr(0, len));
    auto got = backend_->Get("t/p");
    EXPECT_TRUE(absl::IsDataLoss(got.status())) << len << ": " << got.status();
    EXPECT_THAT(std::string(got.status().message()), HasSubstr("t/p"));
  }
}

TEST_F(VaultTest, FileCopiedToAnotherPathIsRefused) {
  ASSERT_TRUE(backend_->Set("prod/db", Buf("prod-password")).ok());
  ASSERT_TRUE(backend_->Set("dev/db", Buf("dev")).ok());
  fs::copy_file(dir_ / "prod/db", dir_ / "dev/db", fs::copy_options::overwrite_existing);
  auto got = backend_->Get("dev/db");
  EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("dev/db"));
}

TEST_F(VaultTest, TraversalIsRefused) {
  for (const char* bad : {"../x", "/abs", "a/../../x", "a//b", "./x", "", ".master.key",
                          "x/.vigo-tmp.1", ".vigo-passphrase"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(backend_->Set(bad, Buf("v")).status())) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(backend_->Get(bad).status())) << bad;
  }
  EXPECT_FALSE(fs::exists(tmp_.path() / "x"));
}

TEST_F(VaultTest, SymlinkInsideSecretsDirIsRefused) {
  TempDir outside;
  ASSERT_TRUE(backend_->Set("in/real", Buf("v")).ok());
  // A directory symlink pointing out of the vault.
  fs::create_directory_symlink(outside.path(), dir_ / "link");
  auto w = backend_->Set("link/x", Buf("escaped"));
  EXPECT_FALSE(w.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(w.status())) << w.status();
  EXPECT_FALSE(fs::exists(outside.path() / "x"));
  EXPECT_FALSE(backend_->Get("link/x").ok());
  // A file symlink: never read through, never replaced.
  WriteFileOrDie(outside.path() / "target", "outside-data");
  fs::create_symlink(outside.path() / "target", dir_ / "in" / "leaf");
  EXPECT_TRUE(absl::IsFailedPrecondition(backend_->Get("in/leaf").status()));
  EXPECT_FALSE(backend_->Set("in/leaf", Buf("v")).ok());
  EXPECT_EQ(ReadFileOrEmpty(outside.path() / "target"), "outside-data");
  // Listing skips links.
  EXPECT_THAT(*backend_->List(""), ::testing::ElementsAre("in/real"));
}

TEST_F(VaultTest, OneMebibyteWorksOneMoreByteIsRefused) {
  auto big = sandbox::SecretBuffer::Create(vault::kMaxValueBytes);
  ASSERT_TRUE(big.ok());
  for (size_t i = 0; i < big->size(); ++i) big->RevealMutable()[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE(backend_->Set("big", *big).ok());
  auto got = backend_->Get("big");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->ConstantTimeEquals(*big));
  got->Clear();
  ASSERT_TRUE(big->Resize(vault::kMaxValueBytes + 1).ok());
  auto over = backend_->Set("big", *big);
  EXPECT_TRUE(absl::IsInvalidArgument(over.status()));
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("1048576"));
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("1 MiB"));
}

TEST_F(VaultTest, MasterKeyWithWrongModeIsRefusedWithFixHint) {
  fs::path key = dir_ / ".master.key";
  ASSERT_EQ(::chmod(key.c_str(), 0640), 0);
  auto b = LocalBackend::Open(dir_);
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(b.status()));
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("chmod 600 " + key.string()));
  ASSERT_EQ(::chmod(key.c_str(), 0604), 0);
  EXPECT_FALSE(LocalBackend::Open(dir_).ok());
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  EXPECT_TRUE(LocalBackend::Open(dir_).ok());
}

TEST_F(VaultTest, MasterKeyOwnedByAnotherUidIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  fs::path key = dir_ / ".master.key";
  ASSERT_EQ(::chown(key.c_str(), 12345, 12345), 0);
  auto b = LocalBackend::Open(dir_);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("not by the running uid"));
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("chown"));
}

TEST_F(VaultTest, MalformedOrMissingMasterKeyIsRefused) {
  fs::path key = dir_ / ".master.key";
  WriteFileOrDie(key, "not hex at all\n");
  auto b = LocalBackend::Open(dir_);
  EXPECT_TRUE(absl::IsFailedPrecondition(b.status()));
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("malformed"));
  WriteFileOrDie(key, std::string(64, 'z'));
  EXPECT_THAT(std::string(LocalBackend::Open(dir_).status().message()), HasSubstr("malformed"));
  WriteFileOrDie(key, std::string(62, 'a'));
  EXPECT_THAT(std::string(LocalBackend::Open(dir_).status().message()), HasSubstr("malformed"));
  fs::remove(key);
  auto missing = LocalBackend::Open(dir_);
  EXPECT_TRUE(absl::IsFailedPrecondition(missing.status()));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("secrets init"));
}

TEST_F(VaultTest, CreateMasterKeyNeverOverwrites) {
  std::string before = ReadFileOrEmpty(dir_ / ".master.key");
  EXPECT_TRUE(absl::IsAlreadyExists(vault::CreateMasterKey(dir_)));
  EXPECT_EQ(ReadFileOrEmpty(dir_ / ".master.key"), before);
  struct stat st;
  ASSERT_EQ(::stat((dir_ / ".master.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(before.size(), 65u);
}

TEST_F(VaultTest, RotateReencryptsEverythingUnderANewKey) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(backend_->Set("r/" + std::to_string(i), Buf("value-" + std::to_string(i))).ok());
  }
  std::string old_key = ReadFileOrEmpty(dir_ / ".master.key");
  auto v0 = backend_->Version("r/0");
  auto r = backend_->Rotate();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->secrets, 20u);
  EXPECT_EQ(r->reencrypted, 20u);
  EXPECT_FALSE(r->resumed);
  EXPECT_NE(ReadFileOrEmpty(dir_ / ".master.key"), old_key);
  EXPECT_FALSE(fs::exists(dir_ / ".master.key.next"));
  // A fresh backend (new process) reads everything with the new key only.
  auto fresh = LocalBackend::Open(dir_);
  ASSERT_TRUE(fresh.ok());
  for (int i = 0; i < 20; ++i) {
    auto v = (*fresh)->Get("r/" + std::to_string(i));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(Str(*v), "value-" + std::to_string(i));
  }
  // The value did not change, so neither did its version.
  EXPECT_EQ(*(*fresh)->Version("r/0"), *v0);
}

TEST_F(VaultTest, RotateInterruptedAtEveryFileFinishesOnNextRun) {
  constexpr int kN = 6;
  for (int i = 0; i < kN; ++i) {
    ASSERT_TRUE(backend_->Set("c/" + std::to_string(i), Buf("v" + std::to_string(i))).ok());
  }
  for (size_t stop_after = 0; stop_after <= kN; ++stop_after) {
    // Simulate a crash: the hook aborts the run after `stop_after` files.
    struct Crash {};
    bool crashed = false;
    auto st = [&]() -> absl::Status {
      try {
        auto r = backend_->Rotate([&](std::string_view step, size_t n) {
          if ((step == "file" && n == stop_after) || (stop_after == 0 && step == "next-key")) {
            throw Crash{};
          }
        });
        return r.status();
      } catch (const Crash&) {
        crashed = true;
        return absl::AbortedError("crash");
      }
    }();
    ASSERT_TRUE(crashed) << stop_after << " " << st;
    EXPECT_TRUE(fs::exists(dir_ / ".master.key.next"));
    // Every secret is readable in the crashed state, also by a new process.
    auto fresh = LocalBackend::Open(dir_);
    ASSERT_TRUE(fresh.ok()) << fresh.status();
    EXPECT_TRUE((*fresh)->RotationPending());
    for (int i = 0; i < kN; ++i) {
      auto v = (*fresh)->Get("c/" + std::to_string(i));
      ASSERT_TRUE(v.ok()) << "after " << stop_after << " files: " << v.status();
      EXPECT_EQ(Str(*v), "v" + std::to_string(i));
    }
    // A write in the crashed state is not lost by the finishing run.
    ASSERT_TRUE((*fresh)->Set("c/0", Buf("v0")).ok());
    auto r = (*fresh)->Rotate();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->resumed);
    EXPECT_EQ(r->secrets, static_cast<size_t>(kN));
    EXPECT_FALSE(fs::exists(dir_ / ".master.key.next"));
    auto after = LocalBackend::Open(dir_);
    ASSERT_TRUE(after.ok());
    for (int i = 0; i < kN; ++i) {
      EXPECT_EQ(Str(*(*after)->Get("c/" + std::to_string(i))), "v" + std::to_string(i));
    }
  }
}

TEST_F(VaultTest, ReaderWithStaleKeyFollowsARotationByAnotherProcess) {
  ASSERT_TRUE(backend_->Set("s/1", Buf("one")).ok());
  auto other = LocalBackend::Open(dir_);  // e.g. vigocli while vigosrv runs
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Rotate().ok());
  auto v = backend_->Get("s/1");  // backend_ still holds the old key
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(Str(*v), "one");
}

TEST_F(VaultTest, FailedWriteLeavesOldValueAndNoTempFile) {
  ASSERT_TRUE(backend_->Set("w/p", Buf("old")).ok());
  // A directory where the temp file would go that we cannot write to is hard
  // to arrange as root; instead make the target a directory: the write must
  // fail cleanly without touching the existing secret.
  fs::create_directories(dir_ / "w" / "dir");
  EXPECT_FALSE(backend_->Set("w/dir", Buf("new")).ok());
  EXPECT_EQ(Str(*backend_->Get("w/p")), "old");
  for (const auto& e : fs::recursive_directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().rfind(".vigo-tmp.", 0), std::string::npos)
        << e.path();
  }
}

TEST_F(VaultTest, CheckHealth) {
  EXPECT_TRUE(backend_->CheckHealth().ok());
  EXPECT_EQ(backend_->Name(), "local");
}

}  // namespace
}  // namespace vigo::server
