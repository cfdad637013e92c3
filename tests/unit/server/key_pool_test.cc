// EphemeralKeyPool: every key it hands out is distinct and seals exactly one
// call that the recipient can open; the pool refills in the background and
// still answers (inline generation) when drained.
#include "server/service/key_pool.h"

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "common/seal.h"
#include "gtest/gtest.h"

namespace vigo::server::service {
namespace {

TEST(KeyPoolTest, KeysAreDistinctAndEachSealsOneOpenableCall) {
  EphemeralKeyPool pool(4);
  auto recipient = RecipientKey::Generate();
  ASSERT_TRUE(recipient.ok());
  auto value = sandbox::SecretBuffer::Create(5);
  ASSERT_TRUE(value.ok());
  std::set<std::string> server_keys;
  for (int i = 0; i < 40; ++i) {  // more than the capacity: drains and refills
    auto key = pool.Take();
    ASSERT_TRUE(key.ok()) << key.status();
    auto call_id = NewCallId();
    ASSERT_TRUE(call_id.ok());
    auto sealer = Sealer::Create(recipient->public_key(), std::move(*key), *call_id);
    ASSERT_TRUE(sealer.ok()) << sealer.status();
    EXPECT_TRUE(server_keys.insert(sealer->server_public_key()).second) << "key reused at " << i;
    SealContext ctx{"web-1", 1, "app/x", *call_id};
    auto box = sealer->Seal(ctx, *value);
    ASSERT_TRUE(box.ok());
    EXPECT_TRUE(recipient->Open(sealer->server_public_key(), ctx, *box).ok());
  }
}

TEST(KeyPoolTest, RefillsToCapacityInTheBackground) {
  EphemeralKeyPool pool(8);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (pool.ready() < 8 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(pool.ready(), 8u);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(pool.Take().ok());
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (pool.ready() < 8 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(pool.ready(), 8u);
}

}  // namespace
}  // namespace vigo::server::service
