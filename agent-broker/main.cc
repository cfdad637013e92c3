#include "agent-broker/broker_main.h"

int main(int argc, char** argv) { return vigo::broker::BrokerMain(argc, argv); }
