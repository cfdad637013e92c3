#include "cli/cli.h"

int main(int argc, char** argv) { return vigo::cli::Main(argc, argv); }
