// `vigo` (the broker) entry point: run --once | daemon | status.
#ifndef VIGO_AGENT_BROKER_BROKER_MAIN_H_
#define VIGO_AGENT_BROKER_BROKER_MAIN_H_

namespace vigo::broker {
int BrokerMain(int argc, char** argv);
}  // namespace vigo::broker

#endif  // VIGO_AGENT_BROKER_BROKER_MAIN_H_
