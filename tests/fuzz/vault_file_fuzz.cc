// Fuzz target: the local vault's file decoder. Arbitrary bytes as the content
// of a secret file: header parsing and authenticated decryption must reject
// every malformed or forged input with a Status (DATA_LOSS naming the path),
// never crash, and never return a value for a file the key did not write.
// Seeds (tests/fuzz/corpus/vault_file/) are real files written by vigocli under
// the test key below, so mutations start from well-formed headers.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "server/vault/secret_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The master key of the throwaway vault that wrote the seeds.
  static const uint8_t kKey[32] = {124, 82, 46, 115, 11, 38, 232, 174, 185, 16, 5, 204, 116, 31, 27, 239, 151, 218, 199, 159, 121, 85, 157, 191, 64, 192, 238, 145, 79, 84, 70, 56};
  std::span<const uint8_t> file(data, size);
  auto header = vigo::server::vault::ParseSecretFileHeader(file, "fuzz/path");
  auto value = vigo::server::vault::DecryptSecretFile(kKey, "fuzz/path", file);
  // A forged file can only decrypt if it is a seed itself (written with kKey);
  // header parsing must then have accepted it too.
  if (value.ok() && !header.ok()) std::abort();
  return 0;
}
