// Entry points of the modes; argv holds the words after the mode name.
#pragma once

namespace millipede::app {
int run_tap(int argc, char **argv);
} // namespace millipede::app
