#include "server/server_main.h"

int main(int argc, char** argv) { return vigo::server::ServerMain(argc, argv); }
