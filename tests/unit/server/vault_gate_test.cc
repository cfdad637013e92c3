// The unlock gate: scrypt verifier, MAC'd token with expiry, failure delay.
#include <sys/stat.h>
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/vault/unlock_gate.h"
#include "server/vault/vault_crypto.h"
#include "tests/support/test_env.h"

namespace vigo::server::vault {
namespace {

using ::testing::HasSubstr;
using vigo::testing::ReadFileOrEmpty;
using vigo::testing::TempDir;
using vigo::testing::WriteFileOrDie;

sandbox::SecretBuffer Buf(std::string_view s) {
  return std::move(sandbox::SecretBuffer::CopyFrom(AsBytes(s))).value();
}

// Cheap scrypt parameters keep the unit test fast; the CLI uses the defaults.
const ScryptParams kFast{.n = 1024, .r = 8, .p = 1};

TEST(UnlockGateTest, PassphraseVerifierAndToken) {
  TempDir t;
  UnlockGate gate(t.path(), t.path() / "secrets");
  EXPECT_FALSE(gate.Initialized());
  ASSERT_TRUE(gate.SetPassphrase(Buf("correct horse"), kFast).ok());
  EXPECT_TRUE(gate.Initialized());
  EXPECT_TRUE(absl::IsAlreadyExists(gate.SetPassphrase(Buf("other"), kFast)));
  // Only a verifier is stored.
  std::string file = ReadFileOrEmpty(t.path() / "secrets" / ".vigo-passphrase");
  EXPECT_EQ(file.find("correct horse"), std::string::npos);
  EXPECT_THAT(file, HasSubstr("kdf scrypt 1024 8 1"));
  struct stat st;
  ASSERT_EQ(::stat((t.path() / "secrets" / ".vigo-passphrase").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  EXPECT_TRUE(gate.CheckPassphrase(Buf("correct horse")).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(gate.CheckPassphrase(Buf("correct horsE"))));
  EXPECT_TRUE(absl::IsPermissionDenied(gate.CheckPassphrase(Buf(""))));

  const int64_t now = 1'800'000'000;
  auto s = gate.Check(now);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->unlocked);
  ASSERT_TRUE(gate.Unlock(now).ok());
  s = gate.Check(now + 10);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->unlocked);
  EXPECT_EQ(s->expires_unix, now + kUnlockWindowSeconds);
  // Expired after 24 h...
  EXPECT_FALSE(gate.Check(now + kUnlockWindowSeconds).value().unlocked);
  // ...unless a gated verb slid the window.
  ASSERT_TRUE(gate.CheckAndExtend(now + 3600).ok());
  EXPECT_TRUE(gate.Check(now + kUnlockWindowSeconds).value().unlocked);
  ASSERT_TRUE(gate.Lock().ok());
  EXPECT_FALSE(gate.Check(now).value().unlocked);
  EXPECT_TRUE(gate.Lock().ok());  // idempotent
}

TEST(UnlockGateTest, HandMadeOrEditedTokenDoesNotUnlock) {
  TempDir t;
  UnlockGate gate(t.path(), t.path() / "secrets");
  ASSERT_TRUE(gate.SetPassphrase(Buf("pw"), kFast).ok());
  const int64_t now = 1'800'000'000;
  auto token = t.path() / ".secrets-unlocked";
  WriteFileOrDie(token, "");
  EXPECT_FALSE(gate.Check(now).value().unlocked);
  WriteFileOrDie(token, "unlocked\n");
  EXPECT_FALSE(gate.Check(now).value().unlocked);
  ASSERT_TRUE(gate.Unlock(now).ok());
  std::string good = ReadFileOrEmpty(token);
  // Pushing the expiry forward breaks the MAC.
  std::string edited = good;
  size_t p = edited.find("expires=") + 8;
  edited[p] = edited[p] == '9' ? '8' : '9';
  WriteFileOrDie(token, edited);
  auto s = gate.Check(now);
  EXPECT_FALSE(s->unlocked);
  EXPECT_THAT(s->reason, HasSubstr("not valid"));
  // Changing the uid breaks it too.
  edited = good;
  edited.replace(edited.find("uid=") + 4, std::to_string(::geteuid()).size(), "4242");
  WriteFileOrDie(token, edited);
  EXPECT_FALSE(gate.Check(now).value().unlocked);
  WriteFileOrDie(token, good);
  EXPECT_TRUE(gate.Check(now).value().unlocked);
}

// issue 13.13: `secrets lock` used to delete the sentinel only, so a saved
// copy of it, put back, reopened the gate for the rest of its 24 h.
TEST(UnlockGateTest, LockRevokesARestoredCopyOfAnEarlierToken) {
  TempDir t;
  UnlockGate gate(t.path(), t.path() / "secrets");
  ASSERT_TRUE(gate.SetPassphrase(Buf("pw"), kFast).ok());
  const int64_t now = 1'800'000'000;
  auto token = t.path() / ".secrets-unlocked";
  ASSERT_TRUE(gate.Unlock(now).ok());
  const std::string saved = ReadFileOrEmpty(token);
  ASSERT_FALSE(saved.empty());
  // Sliding the window keeps the session: the extended token stays valid,
  // and so does the saved one until a lock.
  ASSERT_TRUE(gate.CheckAndExtend(now + 60).value().unlocked);
  const std::string extended = ReadFileOrEmpty(token);
  ASSERT_TRUE(gate.Lock().ok());
  EXPECT_FALSE(gate.Check(now + 120).value().unlocked);
  for (const std::string& copy : {saved, extended}) {
    WriteFileOrDie(token, copy);
    auto s = gate.Check(now + 120);
    ASSERT_TRUE(s.ok());
    EXPECT_FALSE(s->unlocked);
    EXPECT_THAT(s->reason, HasSubstr("revoked"));
    EXPECT_FALSE(gate.CheckAndExtend(now + 120).value().unlocked);
  }
  // A later unlock starts a new session: the old copy stays dead, the new
  // token works, and a lock with the new token's file missing still revokes.
  ASSERT_TRUE(gate.Unlock(now + 200).ok());
  const std::string second = ReadFileOrEmpty(token);
  EXPECT_TRUE(gate.Check(now + 201).value().unlocked);
  WriteFileOrDie(token, saved);
  EXPECT_FALSE(gate.Check(now + 201).value().unlocked);
  WriteFileOrDie(token, second);
  ASSERT_EQ(::unlink(token.c_str()), 0);
  ASSERT_TRUE(gate.Lock().ok());
  WriteFileOrDie(token, second);
  EXPECT_FALSE(gate.Check(now + 202).value().unlocked);
}

// Deleting or garbling the session file locks; it never makes an old token
// valid again.
TEST(UnlockGateTest, MissingOrGarbledSessionLocks) {
  TempDir t;
  UnlockGate gate(t.path(), t.path() / "secrets");
  ASSERT_TRUE(gate.SetPassphrase(Buf("pw"), kFast).ok());
  const int64_t now = 1'800'000'000;
  ASSERT_TRUE(gate.Unlock(now).ok());
  auto session = t.path() / "secrets" / ".vigo-unlock-session";
  struct stat st;
  ASSERT_EQ(::stat(session.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string id = ReadFileOrEmpty(session);
  for (const std::string& bad : {std::string(""), std::string("0\n"), std::string("zz\n")}) {
    WriteFileOrDie(session, bad);
    ::chmod(session.c_str(), 0600);
    EXPECT_FALSE(gate.Check(now + 1).value().unlocked) << bad;
  }
  ASSERT_EQ(::unlink(session.c_str()), 0);
  EXPECT_FALSE(gate.Check(now + 1).value().unlocked);
  WriteFileOrDie(session, id);
  ::chmod(session.c_str(), 0600);
  EXPECT_TRUE(gate.Check(now + 1).value().unlocked);
}

TEST(UnlockGateTest, FailuresGrowTheDelayAndReset) {
  TempDir t;
  UnlockGate gate(t.path(), t.path() / "secrets");
  ASSERT_TRUE(gate.SetPassphrase(Buf("pw"), kFast).ok());
  const int64_t now = 1'800'000'000;
  EXPECT_EQ(gate.RecentFailures(now), 0);
  EXPECT_EQ(gate.RecordFailure(now), 1);
  EXPECT_EQ(gate.RecordFailure(now + 1), 2);
  EXPECT_EQ(gate.RecordFailure(now + 2), 3);
  EXPECT_EQ(gate.RecentFailures(now + 3), 3);
  EXPECT_EQ(gate.RecentFailures(now + 2 + kFailureWindowSeconds + 1), 0);
  EXPECT_EQ(UnlockGate::DelayFor(1), std::chrono::seconds(1));
  EXPECT_EQ(UnlockGate::DelayFor(3), std::chrono::seconds(4));
  EXPECT_EQ(UnlockGate::DelayFor(50), std::chrono::seconds(30));
  gate.ResetFailures();
  EXPECT_EQ(gate.RecentFailures(now + 3), 0);
}

TEST(UnlockGateTest, NotInitializedIsAClearError) {
  TempDir t;
  UnlockGate gate(t.path(), t.path() / "secrets");
  auto s = gate.Check(0);
  EXPECT_TRUE(absl::IsFailedPrecondition(s.status()));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("secrets init"));
}

}  // namespace
}  // namespace vigo::server::vault
