// `vigosrv init --root DIR [--hostname NAME]`: creates the data root skeleton
// of CONTRACT §2 without ever replacing an existing file.
//
//   InitReport r;
//   VIGO_RETURN_IF_ERROR(InitRoot("/srv/vigo", "vigo.lan", &r));
//   for (auto& p : r.created) std::printf("created %s\n", p.c_str());
//
// Creates (each only when missing): server.yaml (0640), stacks/ with an
// example stack that references no secret (so a server starts on an empty
// vault), secrets/ (0700), tls/ (0700) with ca.pem/ca.key and
// server.pem/server.key (keys 0600; the server certificate covers hostname,
// localhost, 127.0.0.1 and ::1), db/ (0700) with vigo.db, run/ (0700).
// An existing ca.key is reused to sign a missing server certificate; an
// existing server.pem is left alone.
//
// Failure: the first error, naming the path. Not thread-safe (one process).
#ifndef VIGO_SERVER_INIT_H_
#define VIGO_SERVER_INIT_H_

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace vigo::server {

struct InitReport {
  std::vector<std::string> created;  // paths, relative to root
  std::vector<std::string> kept;     // already present, left untouched
};

absl::Status InitRoot(const std::filesystem::path& root, const std::string& hostname,
                      InitReport* report);

}  // namespace vigo::server

#endif  // VIGO_SERVER_INIT_H_
