#include "common/seal.h"

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace vigo {
namespace {

sandbox::SecretBuffer Value(std::string_view text) {
  auto b = sandbox::SecretBuffer::Create(text.size());
  EXPECT_TRUE(b.ok()) << b.status();
  if (!text.empty()) std::memcpy(b->RevealMutable().data(), text.data(), text.size());
  return std::move(*b);
}

bool Equals(const sandbox::SecretBuffer& b, std::string_view text) {
  auto r = b.Reveal();
  return r.size() == text.size() &&
         (text.empty() || std::memcmp(r.data(), text.data(), r.size()) == 0);
}

struct Sealed {
  RecipientKey key;
  std::string server_key;
  SealContext ctx;
  SealedBox box;
};

Sealed SealOne(std::string_view text) {
  auto key = RecipientKey::Generate();
  EXPECT_TRUE(key.ok()) << key.status();
  auto sealer = Sealer::Create(key->public_key());
  EXPECT_TRUE(sealer.ok()) << sealer.status();
  SealContext ctx{"web-1", 7, "webapp/db_pw", sealer->call_id()};
  auto box = sealer->Seal(ctx, Value(text));
  EXPECT_TRUE(box.ok()) << box.status();
  return Sealed{std::move(*key), sealer->server_public_key(), ctx, *box};
}

TEST(SealTest, RoundTrip) {
  Sealed s = SealOne("hunter2-canary");
  ASSERT_EQ(s.key.public_key().size(), 32u);
  ASSERT_EQ(s.server_key.size(), 32u);
  ASSERT_EQ(s.box.nonce.size(), 12u);
  ASSERT_EQ(s.box.ciphertext.size(), std::string("hunter2-canary").size() + 16);
  EXPECT_EQ(s.box.ciphertext.find("hunter2"), std::string::npos);
  auto v = s.key.Open(s.server_key, s.ctx, s.box);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(Equals(*v, "hunter2-canary"));
}

TEST(SealTest, EmptyValueRoundTrips) {
  Sealed s = SealOne("");
  auto v = s.key.Open(s.server_key, s.ctx, s.box);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->size(), 0u);
}

TEST(SealTest, ManyValuesOneCallDistinctNonces) {
  auto key = RecipientKey::Generate();
  ASSERT_TRUE(key.ok());
  auto sealer = Sealer::Create(key->public_key());
  ASSERT_TRUE(sealer.ok());
  SealContext a{"e", 1, "a", ""};
  SealContext b{"e", 1, "b", ""};
  auto ba = sealer->Seal(a, Value("same"));
  auto bb = sealer->Seal(b, Value("same"));
  ASSERT_TRUE(ba.ok() && bb.ok());
  EXPECT_NE(ba->nonce, bb->nonce);
  EXPECT_NE(ba->ciphertext, bb->ciphertext);
  a.call_id = sealer->call_id();
  b.call_id = sealer->call_id();
  auto va = key->Open(sealer->server_public_key(), a, *ba);
  ASSERT_TRUE(va.ok()) << va.status();
  EXPECT_TRUE(Equals(*va, "same"));
  // Swapping boxes between refs fails.
  EXPECT_EQ(key->Open(sealer->server_public_key(), a, *bb).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(SealTest, FreshServerKeyAndCallIdPerCall) {
  auto key = RecipientKey::Generate();
  ASSERT_TRUE(key.ok());
  auto s1 = Sealer::Create(key->public_key());
  auto s2 = Sealer::Create(key->public_key());
  ASSERT_TRUE(s1.ok() && s2.ok());
  EXPECT_NE(s1->server_public_key(), s2->server_public_key());
  EXPECT_NE(s1->call_id(), s2->call_id());
  EXPECT_EQ(s1->call_id().size(), 32u);
}

TEST(SealTest, WrongContextFailsWithDataLoss) {
  Sealed s = SealOne("v");
  auto expect_loss = [&](SealContext ctx, const char* what) {
    auto v = s.key.Open(s.server_key, ctx, s.box);
    EXPECT_EQ(v.status().code(), absl::StatusCode::kDataLoss) << what;
  };
  SealContext c = s.ctx;
  c.envoy = "web-2";
  expect_loss(c, "envoy");
  c = s.ctx;
  c.epoch = 8;
  expect_loss(c, "epoch");
  c = s.ctx;
  c.ref = "webapp/other";
  expect_loss(c, "ref");
  c = s.ctx;
  c.call_id[0] = c.call_id[0] == 'a' ? 'b' : 'a';
  expect_loss(c, "call_id");
}

TEST(SealTest, WrongServerKeyFails) {
  Sealed s = SealOne("v");
  auto other = RecipientKey::Generate();
  ASSERT_TRUE(other.ok());
  auto v = s.key.Open(other->public_key(), s.ctx, s.box);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kDataLoss);
}

TEST(SealTest, WrongRecipientFails) {
  Sealed s = SealOne("v");
  auto other = RecipientKey::Generate();
  ASSERT_TRUE(other.ok());
  auto v = other->Open(s.server_key, s.ctx, s.box);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kDataLoss);
}

TEST(SealTest, TamperedCiphertextTagOrNonceFails) {
  Sealed s = SealOne("some secret value");
  for (size_t i : {size_t{0}, size_t{5}, s.box.ciphertext.size() - 1}) {
    SealedBox b = s.box;
    b.ciphertext[i] ^= 0x01;
    EXPECT_EQ(s.key.Open(s.server_key, s.ctx, b).status().code(), absl::StatusCode::kDataLoss)
        << "byte " << i;
  }
  SealedBox b = s.box;
  b.nonce[3] ^= 0x80;
  EXPECT_EQ(s.key.Open(s.server_key, s.ctx, b).status().code(), absl::StatusCode::kDataLoss);
  b = s.box;
  b.ciphertext.pop_back();
  EXPECT_EQ(s.key.Open(s.server_key, s.ctx, b).status().code(), absl::StatusCode::kDataLoss);
}

TEST(SealTest, MalformedInputsAreInvalidArgument) {
  EXPECT_EQ(Sealer::Create("short").status().code(), absl::StatusCode::kInvalidArgument);
  // All-zero public key is a low-order point: key agreement must refuse it.
  EXPECT_FALSE(Sealer::Create(std::string(32, '\0')).ok());
  Sealed s = SealOne("v");
  SealedBox b = s.box;
  b.nonce = "123";
  EXPECT_EQ(s.key.Open(s.server_key, s.ctx, b).status().code(), absl::StatusCode::kInvalidArgument);
  b = s.box;
  b.ciphertext = "x";
  EXPECT_EQ(s.key.Open(s.server_key, s.ctx, b).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SealTest, SealRefusesForeignCallId) {
  auto key = RecipientKey::Generate();
  ASSERT_TRUE(key.ok());
  auto sealer = Sealer::Create(key->public_key());
  ASSERT_TRUE(sealer.ok());
  SealContext ctx{"e", 1, "a", "not-the-call-id"};
  EXPECT_EQ(sealer->Seal(ctx, Value("x")).status().code(), absl::StatusCode::kInvalidArgument);
  SealContext nul{std::string("e\0f", 3), 1, "a", ""};
  EXPECT_EQ(sealer->Seal(nul, Value("x")).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SealTest, PregeneratedServerKeyAndCallerCallIdSealAndOpen) {
  auto key = RecipientKey::Generate();
  ASSERT_TRUE(key.ok()) << key.status();
  auto server_key = EphemeralKey::Generate();
  ASSERT_TRUE(server_key.ok()) << server_key.status();
  auto call_id = NewCallId();
  ASSERT_TRUE(call_id.ok()) << call_id.status();
  auto sealer = Sealer::Create(key->public_key(), std::move(*server_key), *call_id);
  ASSERT_TRUE(sealer.ok()) << sealer.status();
  EXPECT_EQ(sealer->call_id(), *call_id);
  SealContext ctx{"web-1", 3, "webapp/api_token", *call_id};
  auto box = sealer->Seal(ctx, Value("tok-123"));
  ASSERT_TRUE(box.ok()) << box.status();
  auto opened = key->Open(sealer->server_public_key(), ctx, *box);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_TRUE(Equals(*opened, "tok-123"));
}

TEST(SealTest, AServerKeySealsOneCallOnly) {
  auto key = RecipientKey::Generate();
  auto server_key = EphemeralKey::Generate();
  ASSERT_TRUE(key.ok() && server_key.ok());
  EphemeralKey k = std::move(*server_key);
  auto first = Sealer::Create(key->public_key(), std::move(k), *NewCallId());
  ASSERT_TRUE(first.ok()) << first.status();
  // `k` was consumed; a second use is refused, not a silent reuse.
  auto again = Sealer::Create(key->public_key(), std::move(k),
                              *NewCallId());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(again.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SealTest, CallerCallIdMustLookLikeNewCallId) {
  auto key = RecipientKey::Generate();
  ASSERT_TRUE(key.ok());
  for (std::string bad : {std::string(), std::string(31, 'a'), std::string(32, 'G'),
                          std::string(32, 'A'), std::string(31, 'a') + '\0'}) {
    auto server_key = EphemeralKey::Generate();
    ASSERT_TRUE(server_key.ok());
    EXPECT_EQ(Sealer::Create(key->public_key(), std::move(*server_key), bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  auto a = NewCallId();
  auto b = NewCallId();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

TEST(SealTest, OneOpenerOpensEveryBoxOfAResponseAndNothingElse) {
  auto key = RecipientKey::Generate();
  ASSERT_TRUE(key.ok());
  auto sealer = Sealer::Create(key->public_key());
  ASSERT_TRUE(sealer.ok());
  std::vector<std::pair<SealContext, SealedBox>> boxes;
  for (std::string ref : {"a/one", "a/two", "a/three"}) {
    SealContext ctx{"web-1", 9, ref, sealer->call_id()};
    auto box = sealer->Seal(ctx, Value("v-" + ref));
    ASSERT_TRUE(box.ok());
    boxes.emplace_back(ctx, *box);
  }
  auto opener = key->OpenerFor(sealer->server_public_key(), sealer->call_id());
  ASSERT_TRUE(opener.ok()) << opener.status();
  for (const auto& [ctx, box] : boxes) {
    auto v = opener->Open(ctx, box);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_TRUE(Equals(*v, "v-" + ctx.ref));
  }
  // Another call id: refused before decrypting; a box moved to another ref fails.
  SealContext other = boxes[0].first;
  other.call_id = std::string(32, 'a');
  EXPECT_EQ(opener->Open(other, boxes[0].second).status().code(),
            absl::StatusCode::kInvalidArgument);
  SealContext moved = boxes[0].first;
  moved.ref = "a/two";
  EXPECT_EQ(opener->Open(moved, boxes[0].second).status().code(), absl::StatusCode::kDataLoss);
  // An opener for another server key opens nothing.
  auto other_sealer = Sealer::Create(key->public_key());
  ASSERT_TRUE(other_sealer.ok());
  auto wrong = key->OpenerFor(other_sealer->server_public_key(), sealer->call_id());
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->Open(boxes[0].first, boxes[0].second).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace vigo
