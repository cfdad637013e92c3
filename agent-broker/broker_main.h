// `vigo` (the broker) entry point: run --once | daemon | status.
// `run` and `daemon` do not return: after shutting gRPC down in order they
// end the process with _exit (no static destructors under gRPC's threads).
#ifndef VIGO_AGENT_BROKER_BROKER_MAIN_H_
#define VIGO_AGENT_BROKER_BROKER_MAIN_H_

namespace vigo::broker {
int BrokerMain(int argc, char** argv);
}  // namespace vigo::broker

#endif  // VIGO_AGENT_BROKER_BROKER_MAIN_H_
