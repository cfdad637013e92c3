// Window redaction benchmarks (plain harness; ratios against a floor
// measured in the same run, issue 15):
//   1. the worker's scrub (ScrubOutputAsText) of 1 MiB of exec output (log
//      lines with spaces, no secret) against 1,000 values of 32 bytes, vs the
//      floor: one memmem per value over the same output (what the oldest,
//      whole-raw-value-only scrubber cost);
//   2. the server's report scan (LeakScanner) of a 1,000-result report
//      (5 texts each) against 1,000 entitled values, vs the same floor over
//      the report's bytes.
//
//   bench/scrub_bench [--scrub-only]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "agent-worker/scrub.h"
#include "sandbox/secret_buffer.h"
#include "server/service/leak_scan.h"

namespace {

using Clock = std::chrono::steady_clock;
using vigo::sandbox::SecretBuffer;

template <typename Fn>
double TimePerOp(Fn&& fn, std::chrono::milliseconds budget) {
  fn();  // warm up
  size_t n = 0;
  auto start = Clock::now();
  while (Clock::now() < start + budget) {
    fn();
    ++n;
  }
  return std::chrono::duration<double>(Clock::now() - start).count() / static_cast<double>(n);
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

int main(int argc, char** argv) {
  // --scrub-only: the worker scrub alone (for a profiler).
  const bool scrub_only = argc > 1 && std::strcmp(argv[1], "--scrub-only") == 0;
  if (!vigo::sandbox::InitArena().ok()) {
    std::fprintf(stderr, "scrub_bench: cannot lock the arena\n");
    return 1;
  }
  std::mt19937_64 rng(1);
  const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::vector<SecretBuffer> values;
  std::vector<const SecretBuffer*> ptrs;
  for (int i = 0; i < 1000; ++i) {
    std::string v(32, 'x');
    for (char& c : v) c = abc[rng() % 62];
    values.push_back(*SecretBuffer::CopyFrom(Bytes(v)));
  }
  for (const SecretBuffer& v : values) ptrs.push_back(&v);
  std::string out;
  while (out.size() < (size_t{1} << 20)) {
    out += "2026-12-03T10:00:00Z info worker applied resource web-" +
           std::to_string(rng() % 100000) + " status=ok took_us=" + std::to_string(rng() % 999) +
           "\n";
  }
  out.resize(size_t{1} << 20);

  auto floor_scan = [&](std::string_view text) {
    size_t hits = 0;
    for (const SecretBuffer& v : values) {
      hits += ::memmem(text.data(), text.size(), v.Reveal().data(), v.size()) != nullptr;
    }
    return hits;
  };
  volatile size_t sink = 0;
  const double floor1 = TimePerOp([&] { sink = sink + floor_scan(out); }, std::chrono::seconds(2));
  size_t redactions = 0;
  const double scrub = TimePerOp(
      [&] { sink = sink + vigo::worker::ScrubOutputAsText(Bytes(out), ptrs, &redactions).size(); },
      std::chrono::seconds(3));
  std::printf(
      "scrub 1 MiB x 1000 values: %.1f ms (floor memmem x1000: %.1f ms, ratio %.2fx), "
      "redactions %zu\n",
      scrub * 1e3, floor1 * 1e3, scrub / floor1, redactions);

  if (scrub_only) return 0;
  std::vector<std::string> storage;
  for (int i = 0; i < 1000; ++i) {
    storage.push_back("file-" + std::to_string(i));
    storage.push_back("file");
    storage.push_back("ok");
    storage.push_back("none");
    storage.push_back("content matches (sha256 " + std::to_string(rng()) + ")");
  }
  std::string joined;
  for (const std::string& s : storage) joined += s + "\n";
  std::vector<std::string_view> texts(storage.begin(), storage.end());
  const double floor2 =
      TimePerOp([&] { sink = sink + floor_scan(joined); }, std::chrono::seconds(2));
  const double report = TimePerOp(
      [&] {
        vigo::server::service::LeakScanner scan(texts);
        for (size_t i = 0; i < values.size(); ++i) {
          if (!scan.Scan("app/" + std::to_string(i), values[i]).ok()) std::abort();
        }
        if (!scan.Finish().ok()) std::abort();
        sink = sink + scan.passes();
      },
      std::chrono::seconds(3));
  std::printf(
      "report scan 1000 results x 1000 values: %.1f ms (floor memmem x1000 over %zu "
      "bytes: %.1f ms, ratio %.2fx)\n",
      report * 1e3, joined.size(), floor2 * 1e3, report / floor2);
  return 0;
}
