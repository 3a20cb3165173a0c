// main() for test binaries that need EAL: initialises it on virtual memory
// (--no-huge), no PCI, its own --file-prefix so parallel tests never share
// DPDK runtime state, then runs GoogleTest. Extra EAL arguments come from
// MILLIPEDE_TEST_EAL_ARGS (space separated). EAL starts as the application
// starts it (port::init_eal, short TSC calibration).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include <rte_eal.h>
#include <rte_errno.h>

#include "millipede/port/eal_start.h"

int main(int argc, char **argv) {
    testing::InitGoogleTest(&argc, argv);
    std::vector<std::string> args = {argv[0], "--no-huge", "--no-pci", "-m", "1024", "--log-level=lib.eal:error",
                                     "--file-prefix=mp_test_" + std::to_string(getpid())};
    const char *lcores = std::getenv("MILLIPEDE_TEST_LCORES");
    args.push_back(std::string("--lcores=") + (lcores ? lcores : "0@0,1@(0-1),2@(0-1)"));
    if (const char *extra = std::getenv("MILLIPEDE_TEST_EAL_ARGS")) {
        std::istringstream in(extra);
        for (std::string w; in >> w;) args.push_back(w);
    }
    std::vector<char *> cargs;
    for (auto &a : args) cargs.push_back(a.data());
    if (std::string err; millipede::port::init_eal(static_cast<int>(cargs.size()), cargs.data(), err) < 0) {
        std::fprintf(stderr, "EAL initialisation failed: %s\n", err.empty() ? rte_strerror(rte_errno) : err.c_str());
        return 1;
    }
    int rc = RUN_ALL_TESTS();
    rte_eal_cleanup();
    return rc;
}
