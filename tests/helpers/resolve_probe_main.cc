// resolve_probe: a deliberately misbehaving envoy for demos and tests. It
// checks in with the given client certificate (to learn the current epoch),
// then asks ResolveSecrets for arbitrary refs, and prints the gRPC status.
// It never prints values: on success it prints only how many sealed values
// came back (it does not open them).
//
//   resolve_probe --server 127.0.0.1:1530 --ca-file ca.pem --cert-file cert.pem
//                 --key-file key.pem --ref webapp/prod/db_password [--ref ...]
//                 [--epoch N]
// Exit: 0 resolved, 5 PERMISSION_DENIED, 6 FAILED_PRECONDITION, 1 other error.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/seal.h"
#include "vigo/v1/agent.grpc.pb.h"

namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    default: return "OTHER";
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string server, ca, cert, key;
  std::vector<std::string> refs;
  long long epoch = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--server") server = value;
    else if (flag == "--ca-file") ca = value;
    else if (flag == "--cert-file") cert = value;
    else if (flag == "--key-file") key = value;
    else if (flag == "--ref") refs.push_back(value);
    else if (flag == "--epoch") epoch = std::stoll(value);
    else {
      std::fprintf(stderr, "resolve_probe: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (server.empty() || ca.empty() || cert.empty() || key.empty() || refs.empty()) {
    std::fprintf(stderr, "usage: resolve_probe --server H:P --ca-file F --cert-file F "
                         "--key-file F --ref PATH [--ref PATH...] [--epoch N]\n");
    return 2;
  }
  grpc::SslCredentialsOptions opts;
  opts.pem_root_certs = ReadAll(ca);
  opts.pem_cert_chain = ReadAll(cert);
  opts.pem_private_key = ReadAll(key);
  auto channel = grpc::CreateChannel(server, grpc::SslCredentials(opts));
  auto stub = vigo::v1::VigoAgent::NewStub(channel);

  if (epoch < 0) {
    grpc::ClientContext ctx;
    vigo::v1::CheckInRequest req;
    vigo::v1::CheckInResponse resp;
    grpc::Status st = stub->CheckIn(&ctx, req, &resp);
    if (!st.ok()) {
      std::printf("checkin status=%s\n", CodeName(st.error_code()));
      return 1;
    }
    epoch = static_cast<long long>(resp.has_bundle() ? resp.bundle().secrets_epoch()
                                                     : resp.no_change().secrets_epoch());
  }

  auto recipient = vigo::RecipientKey::Generate();
  if (!recipient.ok()) {
    std::fprintf(stderr, "resolve_probe: %s\n", std::string(recipient.status().message()).c_str());
    return 1;
  }
  grpc::ClientContext ctx;
  vigo::v1::ResolveSecretsRequest req;
  for (const auto& r : refs) req.add_refs(r);
  req.set_secrets_epoch(static_cast<uint64_t>(epoch));
  req.set_recipient_key(recipient->public_key());
  vigo::v1::ResolveSecretsResponse resp;
  grpc::Status st = stub->ResolveSecrets(&ctx, req, &resp);
  std::printf("resolve status=%s\n", CodeName(st.error_code()));
  if (st.error_code() == grpc::StatusCode::PERMISSION_DENIED) return 5;
  if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION) return 6;
  if (!st.ok()) return 1;
  std::printf("resolve values=%d\n", resp.values_size());
  return 0;
}
