#include "agent-worker/worker_main.h"

int main(int argc, char** argv) { return vigo::worker::WorkerMain(argc, argv); }
