// Database basics: file modes, WAL, prepared statements, transactions.
#include "server/db.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/support/test_env.h"

namespace vigo::server {
namespace {

using vigo::testing::TempDir;

TEST(DatabaseTest, CreatesPrivateFileAndDirectory) {
  TempDir t;
  auto path = t.path() / "nested" / "db" / "vigo.db";
  auto db = Database::Create(path);
  ASSERT_TRUE(db.ok()) << db.status();
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(path.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto mode = (*db)->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.ok());
  ASSERT_TRUE(*mode->Step());
  EXPECT_EQ(mode->ColumnText(0), "wal");
  auto fk = (*db)->Prepare("PRAGMA foreign_keys");
  ASSERT_TRUE(*fk->Step());
  EXPECT_EQ(fk->ColumnInt(0), 1);
}

TEST(DatabaseTest, PreparedStatementsBindAndRead) {
  TempDir t;
  auto db = Database::Create(t.path() / "x.db");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (a INTEGER, b TEXT, c BLOB, d TEXT)").ok());
  auto ins = (*db)->Prepare("INSERT INTO t VALUES (?, ?, ?, ?)");
  ASSERT_TRUE(ins.ok());
  ins->BindInt(1, -42);
  ins->BindText(2, std::string("it's \"quoted\"\n", 14));
  const char blob[] = {'\0', '\1', '\2'};
  ins->BindBlob(3, blob, 3);
  ins->BindNull(4);
  ASSERT_FALSE(*ins->Step());
  ASSERT_TRUE(ins->Reset().ok());
  auto sel = (*db)->Prepare("SELECT a, b, c, d FROM t");
  ASSERT_TRUE(*sel->Step());
  EXPECT_EQ(sel->ColumnInt(0), -42);
  EXPECT_EQ(sel->ColumnText(1), "it's \"quoted\"\n");
  EXPECT_EQ(sel->ColumnBlob(2), std::string(blob, 3));
  EXPECT_TRUE(sel->ColumnIsNull(3));
  EXPECT_FALSE(*sel->Step());
}

TEST(DatabaseTest, ErrorsNameTheDatabase) {
  TempDir t;
  auto db = Database::Create(t.path() / "x.db");
  ASSERT_TRUE(db.ok());
  auto bad = (*db)->Prepare("SELEKT nonsense");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("x.db"), std::string::npos);
}

TEST(DatabaseTest, RollbackDiscards) {
  TempDir t;
  auto db = Database::Create(t.path() / "x.db");
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (a INTEGER)").ok());
  ASSERT_TRUE((*db)->Begin().ok());
  ASSERT_TRUE((*db)->Exec("INSERT INTO t VALUES (1)").ok());
  (*db)->Rollback();
  ASSERT_TRUE((*db)->Begin().ok());
  ASSERT_TRUE((*db)->Exec("INSERT INTO t VALUES (2)").ok());
  ASSERT_TRUE((*db)->Commit().ok());
  auto sel = (*db)->Prepare("SELECT group_concat(a) FROM t");
  ASSERT_TRUE(*sel->Step());
  EXPECT_EQ(sel->ColumnText(0), "2");
}

TEST(DatabaseTest, SymlinkedDatabaseIsRefused) {
  TempDir t;
  std::filesystem::create_symlink(t.path() / "elsewhere.db", t.path() / "x.db");
  EXPECT_FALSE(Database::Create(t.path() / "x.db").ok());
}

// Regression: the server holds two connections to vigo.db; vigocli opens and
// closes its own in another process. Opening the second connection once
// dropped the process's POSIX locks (a raw open()/close() of the file), so the
// exiting vigocli deleted the WAL under the server and every later commit by
// the server became invisible to other processes (and was lost on a crash).
TEST(DatabaseTest, CommitsStayVisibleToOtherProcessesWithTwoConnections) {
  vigo::testing::TempDir dir;
  const auto path = dir.path() / "db" / "vigo.db";
  auto a = Database::Create(path);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE((*a)->Exec("CREATE TABLE t (x INTEGER)").ok());
  auto b = Database::Create(path);  // the second connection in this process
  ASSERT_TRUE(b.ok()) << b.status();

  // A separate program (not a fork: a forked child shares SQLite's in-process
  // lock bookkeeping and would hide the bug), like vigocli: open, read, close.
  auto count_in_child = [&]() -> int {
    vigo::testing::RunResult r =
        vigo::testing::Run({"/usr/bin/sqlite3", path.string(), "SELECT count(*) FROM t;"});
    if (r.exit_code != 0) return -1;
    return std::atoi(r.out.c_str());
  };

  ASSERT_TRUE((*b)->Exec("INSERT INTO t VALUES (1)").ok());
  EXPECT_EQ(count_in_child(), 1);
  ASSERT_TRUE((*a)->Exec("INSERT INTO t VALUES (2)").ok());
  EXPECT_EQ(count_in_child(), 2);
  ASSERT_TRUE((*b)->Exec("INSERT INTO t VALUES (3)").ok());
  EXPECT_EQ(count_in_child(), 3);
  std::error_code ec;
  EXPECT_TRUE(std::filesystem::exists(path.string() + "-wal", ec))
      << "the WAL of a live database was deleted";
}

TEST(DatabaseTest, ARecycledStatementStartsClean) {
  TempDir tmp;
  auto db = Database::Create(tmp.path() / "db" / "vigo.db");
  auto other = Database::Create(tmp.path() / "db" / "vigo.db");
  ASSERT_TRUE(db.ok() && other.ok());
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (7), (9)").ok());
  constexpr char kSql[] = "SELECT count(*) FROM t WHERE x > ?";
  {
    auto st = (*db)->Prepare("SELECT x FROM t WHERE x > ? ORDER BY x");
    ASSERT_TRUE(st.ok());
    st->BindInt(1, 5);
    auto row = st->Step();
    ASSERT_TRUE(row.ok() && *row);
    EXPECT_EQ(st->ColumnInt(0), 7);
    // Dropped mid-iteration: goes back to the cache, reset.
  }
  {
    auto st = (*db)->Prepare("SELECT x FROM t WHERE x > ? ORDER BY x");
    ASSERT_TRUE(st.ok());
    // No binding: the old 5 must not linger (NULL matches nothing).
    auto row = st->Step();
    ASSERT_TRUE(row.ok());
    EXPECT_FALSE(*row);
  }
  {
    auto st = (*db)->Prepare(kSql);
    ASSERT_TRUE(st.ok());
    st->BindInt(1, 0);
    ASSERT_TRUE(st->Step().ok());
    EXPECT_EQ(st->ColumnInt(0), 3);
  }
  // The abandoned read above released its snapshot: another connection's
  // commit is visible to the recycled statement.
  ASSERT_TRUE((*other)->Exec("INSERT INTO t VALUES (11)").ok());
  auto st = (*db)->Prepare(kSql);
  ASSERT_TRUE(st.ok());
  st->BindInt(1, 0);
  ASSERT_TRUE(st->Step().ok());
  EXPECT_EQ(st->ColumnInt(0), 4);
}

}  // namespace
}  // namespace vigo::server
