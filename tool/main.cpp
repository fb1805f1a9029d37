// pagewaste's entry point: the command line (commands/cli.h).
#include "commands/cli.h"

int main(int argc, char** argv) { return pagewaste::RunCli(argc, argv); }
