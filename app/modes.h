// Entry point of tap mode (tx/rx: transport_mode.h). argv holds the words
// after the mode name, eal_argv the EAL arguments (eal_argv[0] the program).
// Parses the options, checks capture files, then initialises EAL itself and
// cleans it up; returns the process's exit status (0, 1 failure, 2 usage).
#pragma once

namespace millipede::app {
int run_tap(int argc, char **argv, int eal_argc, char **eal_argv);
} // namespace millipede::app
