// terminate / initiate wiring (lib/tunnel): set up before EAL starts so a
// busy port or an unknown host costs no start-up, then hand the plane the
// fds it reads and writes instead of stdin and stdout.
//
// Contract: prepare(), attach(), finish() on the main thread in that order;
// request_end() is async-signal-safe (the first SIGINT/SIGTERM ends the
// tunnel cleanly, a second one stops the plane).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "millipede/dataplane/transport.h"
#include "millipede/tunnel/bridge.h"

namespace millipede::app {

class TransportTunnel {
  public:
    ~TransportTunnel();
    bool active() const { return bridge_ || plain_fd_ >= 0; }
    // Opens the listener / resolves HOST (native), or takes the one plain
    // connection (--compat); sets o.input_fd / o.output_fd. "" or one line.
    std::string prepare(dataplane::TransportOptions &o);
    void attach(dataplane::TransportPlane *plane); // starts the bridge
    bool request_end();                            // true: the tunnel was asked to end
    // After plane->run(): stops the bridge, prints its figures (verbose >= 2)
    // and returns the exit status (a failed bridge fails the run).
    int finish(int status, const char *who, unsigned verbose);

  private:
    std::unique_ptr<tunnel::TunnelBridge> bridge_;
    int plain_fd_ = -1;
    std::atomic<dataplane::TransportPlane *> plane_{nullptr};
    std::atomic<bool> end_asked_{false};
};

} // namespace millipede::app
