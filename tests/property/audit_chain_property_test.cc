// Property: for any sequence of audit events, flipping any single bit of any
// stored column of any record is detected by AuditLog::Verify, which names
// exactly that record. Schema-agnostic: columns are discovered with
// PRAGMA table_info, so the test keeps holding if columns are added.
#include <sqlite3.h>

#include "gtest/gtest.h"
#include <rapidcheck/gtest.h>

#include <string>
#include <vector>

#include "server/audit.h"
#include "server/db.h"
#include "tests/support/test_env.h"

namespace vigo::server {
namespace {

struct Column {
  std::string name;
};

std::vector<Column> AuditColumns(sqlite3* db) {
  std::vector<Column> cols;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA table_info(audit)", -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    cols.push_back({reinterpret_cast<const char*>(sqlite3_column_text(st, 1))});
  }
  sqlite3_finalize(st);
  return cols;
}

// Flips bit `bit` of column `col` in the record with rowid `seq`, keeping the
// column's storage type. Returns false when the flip is impossible (NULL,
// empty value) or rejected by a constraint.
bool FlipBit(sqlite3* db, const std::string& col, int64_t seq, uint64_t bit) {
  std::string sel = "SELECT typeof(\"" + col + "\"), \"" + col + "\" FROM audit WHERE seq = ?";
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sel.c_str(), -1, &st, nullptr) != SQLITE_OK) return false;
  sqlite3_bind_int64(st, 1, seq);
  if (sqlite3_step(st) != SQLITE_ROW) {
    sqlite3_finalize(st);
    return false;
  }
  std::string type = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  std::string upd = "UPDATE audit SET \"" + col + "\" = ? WHERE seq = ?";
  sqlite3_stmt* up = nullptr;
  sqlite3_prepare_v2(db, upd.c_str(), -1, &up, nullptr);
  bool ok = true;
  if (type == "integer") {
    int64_t v = sqlite3_column_int64(st, 1);
    v ^= int64_t{1} << (bit % 62);
    sqlite3_bind_int64(up, 1, v);
  } else if (type == "text" || type == "blob") {
    const void* p = sqlite3_column_blob(st, 1);
    int n = sqlite3_column_bytes(st, 1);
    if (n == 0) {
      ok = false;
    } else {
      std::string v(static_cast<const char*>(p), static_cast<size_t>(n));
      size_t byte = (bit / 8) % v.size();
      v[byte] = static_cast<char>(v[byte] ^ (1 << (bit % 8)));
      if (type == "text") {
        sqlite3_bind_text(up, 1, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
      } else {
        sqlite3_bind_blob(up, 1, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
      }
    }
  } else {
    ok = false;
  }
  sqlite3_finalize(st);
  if (ok) {
    sqlite3_bind_int64(up, 2, seq);
    ok = sqlite3_step(up) == SQLITE_DONE && sqlite3_changes(db) == 1;
  }
  sqlite3_finalize(up);
  return ok;
}

const std::vector<std::string> kEvents = {
    "secret.set",      "secret.reveal",    "secret.delete",        "secret.generate",
    "secrets.rotate",  "secrets.unlock",   "secrets.unlock.failed", "secrets.lock",
    "secret.resolve",  "secret.resolve.denied", "config.reload",    "envoy.issue",
    "envoy.revoke"};

RC_GTEST_PROP(AuditChainProperty, AnySingleBitFlipIsDetectedAndNamed, ()) {
  vigo::testing::TempDir dir;
  auto db = Database::Create(dir.path() / "db" / "vigo.db");
  RC_ASSERT(db.ok());
  AuditLog log(db->get());
  const int n = *rc::gen::inRange(1, 12);
  for (int i = 0; i < n; ++i) {
    AuditEvent e;
    e.event = *rc::gen::elementOf(kEvents);
    e.actor = *rc::gen::element<std::string>("uid:0", "server", "envoy:web-1");
    e.envoy = *rc::gen::element<std::string>("", "web-1", "db-2");
    e.paths = *rc::gen::container<std::vector<std::string>>(
        *rc::gen::inRange(0, 3), rc::gen::element<std::string>("a/b", "webapp/db_pw", "x"));
    e.outcome = *rc::gen::element<std::string>("ok", "denied", "failed");
    e.detail = *rc::gen::element<std::string>("", "reason one", "\"quoted\"");
    RC_ASSERT(log.Append(e).ok());
  }
  auto clean = log.Verify();
  RC_ASSERT(clean.ok());
  RC_ASSERT(clean->ok);
  RC_ASSERT(clean->records == n);

  auto records = log.List();
  RC_ASSERT(records.ok());
  const AuditRecord& victim = (*records)[*rc::gen::inRange<size_t>(0, records->size())];

  sqlite3* raw = nullptr;
  RC_ASSERT(sqlite3_open((dir.path() / "db" / "vigo.db").c_str(), &raw) == SQLITE_OK);
  std::vector<Column> cols = AuditColumns(raw);
  RC_ASSERT(!cols.empty());
  std::vector<std::string> names;
  for (const Column& c : cols) {
    if (c.name != "seq") names.push_back(c.name);  // the key itself: see below
  }
  const std::string col = *rc::gen::elementOf(names);
  const uint64_t bit = *rc::gen::inRange<uint64_t>(0, 4096);
  bool flipped = FlipBit(raw, col, victim.seq, bit);
  sqlite3_close(raw);
  RC_PRE(flipped);  // NULL / empty columns cannot have a bit flipped
  RC_TAG(col);

  auto after = log.Verify();
  RC_ASSERT(after.ok());
  RC_ASSERT(!after->ok);
  RC_ASSERT(after->first_bad_seq.has_value());
  RC_ASSERT(*after->first_bad_seq == victim.seq);
}

// Deleting any record but the last breaks the chain. (Truncating the tail is
// not detectable by a hash chain alone; SECURITY.md says so.)
RC_GTEST_PROP(AuditChainProperty, DeletedRecordIsDetected, ()) {
  vigo::testing::TempDir dir;
  auto db = Database::Create(dir.path() / "db" / "vigo.db");
  RC_ASSERT(db.ok());
  AuditLog log(db->get());
  const int n = *rc::gen::inRange(2, 10);
  for (int i = 0; i < n; ++i) {
    RC_ASSERT(log.Append({.event = "secret.set", .actor = "uid:0", .envoy = "",
                          .paths = {"p/" + std::to_string(i)}, .outcome = "ok", .detail = ""})
                  .ok());
  }
  const int64_t victim = *rc::gen::inRange<int64_t>(1, n);  // seq 1..n-1
  sqlite3* raw = nullptr;
  RC_ASSERT(sqlite3_open((dir.path() / "db" / "vigo.db").c_str(), &raw) == SQLITE_OK);
  std::string sql = "DELETE FROM audit WHERE seq = " + std::to_string(victim);
  RC_ASSERT(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(raw);
  auto after = log.Verify();
  RC_ASSERT(after.ok());
  RC_ASSERT(!after->ok);
}

}  // namespace
}  // namespace vigo::server
