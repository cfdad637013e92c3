// vigosrv entry point: `vigosrv init --root DIR [--hostname NAME]` and
// `vigosrv --root DIR [--grpc-listen HOST:PORT]` (serve).
#ifndef VIGO_SERVER_SERVER_MAIN_H_
#define VIGO_SERVER_SERVER_MAIN_H_

namespace vigo::server {
int ServerMain(int argc, char** argv);
}  // namespace vigo::server

#endif  // VIGO_SERVER_SERVER_MAIN_H_
