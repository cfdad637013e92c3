#include "server/audit.h"

#include <openssl/evp.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "common/status_macros.h"
#include "common/strings.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "vocab/hex.h"

namespace vigo::server {
namespace {

constexpr char kZeroHash[] = "0000000000000000000000000000000000000000000000000000000000000000";

constexpr char kSchema[] =
    "CREATE TABLE IF NOT EXISTS audit ("
    " seq INTEGER PRIMARY KEY,"
    " time_ms INTEGER NOT NULL,"
    " event TEXT NOT NULL,"
    " actor TEXT NOT NULL,"
    " envoy TEXT NOT NULL,"
    " paths TEXT NOT NULL,"
    " outcome TEXT NOT NULL,"
    " detail TEXT NOT NULL,"
    " prev_hash TEXT NOT NULL,"
    " hash TEXT NOT NULL)";

// The stored form of the path list: a JSON array of strings. It is also what
// the hash covers, so the chain protects exactly the bytes in the table.
std::string EncodePaths(const std::vector<std::string>& paths) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartArray();
  for (const std::string& p : paths) w.String(p.data(), static_cast<rapidjson::SizeType>(p.size()));
  w.EndArray();
  return std::string(sb.GetString(), sb.GetSize());
}

// Lenient decode for display: a row whose paths column was altered still
// lists (Verify is what reports the alteration).
std::vector<std::string> DecodePaths(const std::string& text) {
  std::vector<std::string> out;
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  if (d.HasParseError() || !d.IsArray()) {
    out.push_back(text);
    return out;
  }
  for (const auto& v : d.GetArray()) {
    if (v.IsString()) out.emplace_back(v.GetString(), v.GetStringLength());
  }
  return out;
}

// The columns of one stored row, exactly as stored.
struct Row {
  int64_t seq = 0;
  int64_t time_ms = 0;
  std::string event, actor, envoy, paths, outcome, detail, prev_hash, hash;
};

void AppendU64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void AppendField(std::string* out, std::string_view s) {
  AppendU64(out, s.size());
  out->append(s);
}

// Canonical, unambiguous encoding of every stored column except `hash`:
// a domain tag, then each field as (8-byte big-endian length, bytes) or an
// 8-byte big-endian integer. No two different rows share an encoding.
std::string CanonicalEncoding(const Row& r) {
  std::string out;
  AppendField(&out, "vigo-audit-v1");
  AppendU64(&out, static_cast<uint64_t>(r.seq));
  AppendU64(&out, static_cast<uint64_t>(r.time_ms));
  AppendField(&out, r.event);
  AppendField(&out, r.actor);
  AppendField(&out, r.envoy);
  AppendField(&out, r.paths);
  AppendField(&out, r.outcome);
  AppendField(&out, r.detail);
  AppendField(&out, r.prev_hash);
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return vocab::Hex(std::span<const uint8_t>(md, len));
}

std::string RowHash(const Row& r) { return Sha256Hex(CanonicalEncoding(r)); }

Row ReadRow(const Statement& st) {
  Row r;
  r.seq = st.ColumnInt(0);
  r.time_ms = st.ColumnInt(1);
  r.event = st.ColumnText(2);
  r.actor = st.ColumnText(3);
  r.envoy = st.ColumnText(4);
  r.paths = st.ColumnText(5);
  r.outcome = st.ColumnText(6);
  r.detail = st.ColumnText(7);
  r.prev_hash = st.ColumnText(8);
  r.hash = st.ColumnText(9);
  return r;
}

constexpr char kSelectColumns[] =
    "SELECT seq, time_ms, event, actor, envoy, paths, outcome, detail, prev_hash, hash "
    "FROM audit";

std::string FormatTime(int64_t unix_ms) {
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  int ms = static_cast<int>(unix_ms % 1000);
  if (ms < 0) ms += 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

}  // namespace

absl::Status AuditLog::EnsureTable() {
  if (table_ready_) return absl::OkStatus();
  VIGO_RETURN_IF_ERROR(db_->EnsureSchema(kSchema));
  table_ready_ = true;
  return absl::OkStatus();
}

absl::Status AuditLog::Append(const AuditEvent& event) {
  return AppendBatch(std::span<const AuditEvent>(&event, 1));
}

absl::Status AuditLog::AppendBatch(std::span<const AuditEvent> events) {
  return AppendBatchWith(events, nullptr);
}

absl::Status AuditLog::AppendWith(const AuditEvent& event, const InTransaction& also) {
  return AppendBatchWith(std::span<const AuditEvent>(&event, 1), also);
}

absl::Status AuditLog::AppendBatchWith(std::span<const AuditEvent> events,
                                       const InTransaction& also) {
  if (events.empty()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(db_->mu());
  VIGO_RETURN_IF_ERROR(EnsureTable());
  // BEGIN IMMEDIATE takes the write lock before we read the chain head, so a
  // concurrent appender in another process waits (busy_timeout) instead of
  // linking to the same predecessor.
  VIGO_RETURN_IF_ERROR(db_->Begin());
  auto body = [&]() -> absl::Status {
    Row r;
    r.prev_hash = kZeroHash;
    r.seq = 0;
    {
      VIGO_ASSIGN_OR_RETURN(Statement head,
                            db_->Prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"));
      VIGO_ASSIGN_OR_RETURN(bool has, head.Step());
      if (has) {
        r.seq = head.ColumnInt(0);
        r.prev_hash = head.ColumnText(1);
      }
    }
    VIGO_ASSIGN_OR_RETURN(
        Statement ins,
        db_->Prepare("INSERT INTO audit (seq, time_ms, event, actor, envoy, paths, outcome, "
                     "detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)"));
    for (const AuditEvent& event : events) {
      r.seq += 1;
      r.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
      r.event = event.event;
      r.actor = event.actor;
      r.envoy = event.envoy;
      r.paths = EncodePaths(event.paths);
      r.outcome = event.outcome;
      r.detail = event.detail;
      r.hash = RowHash(r);
      VIGO_RETURN_IF_ERROR(ins.Reset());
      ins.BindInt(1, r.seq);
      ins.BindInt(2, r.time_ms);
      ins.BindText(3, r.event);
      ins.BindText(4, r.actor);
      ins.BindText(5, r.envoy);
      ins.BindText(6, r.paths);
      ins.BindText(7, r.outcome);
      ins.BindText(8, r.detail);
      ins.BindText(9, r.prev_hash);
      ins.BindText(10, r.hash);
      VIGO_ASSIGN_OR_RETURN(bool row, ins.Step());
      (void)row;
      r.prev_hash = r.hash;
    }
    if (also) VIGO_RETURN_IF_ERROR(also(db_));
    return absl::OkStatus();
  };
  absl::Status st = body();
  if (!st.ok()) {
    db_->Rollback();
    return st;
  }
  st = db_->Commit();
  if (!st.ok()) db_->Rollback();
  return st;
}

absl::StatusOr<std::vector<AuditRecord>> AuditLog::List(int64_t after_seq, int64_t limit) {
  std::lock_guard<std::mutex> lock(db_->mu());
  VIGO_RETURN_IF_ERROR(EnsureTable());
  VIGO_ASSIGN_OR_RETURN(
      Statement st, db_->Prepare(StrCat(kSelectColumns, " WHERE seq > ? ORDER BY seq LIMIT ?")));
  st.BindInt(1, after_seq);
  st.BindInt(2, limit);
  std::vector<AuditRecord> out;
  while (true) {
    VIGO_ASSIGN_OR_RETURN(bool has, st.Step());
    if (!has) break;
    Row r = ReadRow(st);
    AuditRecord rec;
    rec.seq = r.seq;
    rec.time_unix_ms = r.time_ms;
    rec.event.event = r.event;
    rec.event.actor = r.actor;
    rec.event.envoy = r.envoy;
    rec.event.paths = DecodePaths(r.paths);
    rec.event.outcome = r.outcome;
    rec.event.detail = r.detail;
    rec.prev_hash = r.prev_hash;
    rec.hash = r.hash;
    out.push_back(std::move(rec));
  }
  return out;
}

absl::StatusOr<AuditVerifyResult> AuditLog::Verify() {
  std::lock_guard<std::mutex> lock(db_->mu());
  VIGO_RETURN_IF_ERROR(EnsureTable());
  VIGO_ASSIGN_OR_RETURN(Statement st, db_->Prepare(StrCat(kSelectColumns, " ORDER BY seq")));
  AuditVerifyResult result;
  std::string expected_prev = kZeroHash;
  int64_t expected_seq = 1;
  while (true) {
    VIGO_ASSIGN_OR_RETURN(bool has, st.Step());
    if (!has) break;
    Row r = ReadRow(st);
    ++result.records;
    auto fail = [&](std::string problem) {
      result.ok = false;
      result.first_bad_seq = r.seq;
      result.problem = std::move(problem);
    };
    if (r.seq != expected_seq) {
      fail(StrCat("sequence gap: expected record ", expected_seq, ", found ", r.seq,
                  " (records deleted or renumbered)"));
      break;
    }
    if (r.prev_hash != expected_prev) {
      fail("prev_hash does not link to the previous record");
      break;
    }
    if (RowHash(r) != r.hash) {
      fail("hash mismatch: the stored record was altered");
      break;
    }
    expected_prev = r.hash;
    ++expected_seq;
  }
  return result;
}

std::string AuditRecordJson(const AuditRecord& record) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&w](std::string_view key, std::string_view value) {
    w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  };
  w.StartObject();
  w.Key("seq");
  w.Int64(record.seq);
  str("time", FormatTime(record.time_unix_ms));
  w.Key("time_unix_ms");
  w.Int64(record.time_unix_ms);
  str("event", record.event.event);
  str("actor", record.event.actor);
  str("envoy", record.event.envoy);
  w.Key("paths");
  w.StartArray();
  for (const std::string& p : record.event.paths) {
    w.String(p.data(), static_cast<rapidjson::SizeType>(p.size()));
  }
  w.EndArray();
  str("outcome", record.event.outcome);
  str("detail", record.event.detail);
  str("prev_hash", record.prev_hash);
  str("hash", record.hash);
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace vigo::server
