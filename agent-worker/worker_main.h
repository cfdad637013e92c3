// `vigo-worker` entry point. Only ever started by `vigo` with the socketpair
// on a fixed fd; refuses to run otherwise.
#ifndef VIGO_AGENT_WORKER_WORKER_MAIN_H_
#define VIGO_AGENT_WORKER_WORKER_MAIN_H_

namespace vigo::worker {
int WorkerMain(int argc, char** argv);
}  // namespace vigo::worker

#endif  // VIGO_AGENT_WORKER_WORKER_MAIN_H_
