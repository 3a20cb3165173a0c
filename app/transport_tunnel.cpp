// terminate / initiate: wiring of lib/tunnel to the plane (transport_tunnel.h).
#include "transport_tunnel.h"

#include <cstdio>

#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include "millipede/tunnel/plain.h"

namespace millipede::app {

TransportTunnel::~TransportTunnel() {
    if (bridge_) bridge_->stop();
    if (plain_fd_ >= 0) close(plain_fd_);
}

std::string TransportTunnel::prepare(dataplane::TransportOptions &o) {
    const bool term = o.terminate_port != 0, init = !o.initiate_host.empty();
    if (!term && !init) return {};
    std::string err;
    if (!o.multiplexed_tunnel()) {
        // Stock viamillipede's form: one connection instead of stdin (tx)
        // or stdout (rx), or both (--compat in full duplex).
        plain_fd_ = term ? tunnel::accept_one(o.terminate_port, o.wait_us, err)
                         : tunnel::connect_one(o.initiate_host, o.initiate_port, o.connect_timeout_us, err);
        if (plain_fd_ < 0) return err;
        if (o.tx) o.input_fd = plain_fd_;
        if (o.duplex || !o.tx) o.output_fd = plain_fd_;
        return {};
    }
    tunnel::BridgeConfig c;
    c.role = term ? tunnel::Role::TERMINATE : tunnel::Role::INITIATE;
    c.listen_port = o.terminate_port;
    c.accept_from_plane = o.terminate_on_ports;
    c.host = o.initiate_host;
    c.port = o.initiate_port;
    c.verbose = o.verbose;
    c.on_fail = [](void *ctx) {
        auto *t = static_cast<TransportTunnel *>(ctx);
        if (auto *p = t->plane_.load()) p->request_stop(t->bridge_->message().c_str());
    };
    c.on_fail_ctx = this;
    // The CPUs the process may use, before EAL pins this thread to the main lcore.
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int i = 0; i < CPU_SETSIZE; i++)
            if (CPU_ISSET(i, &set)) c.cpus.push_back(i);
    bridge_ = tunnel::TunnelBridge::create(c, err);
    if (!bridge_) return err;
    o.input_fd = bridge_->plane_input_fd();
    o.output_fd = bridge_->plane_output_fd();
    if (o.terminate_on_ports) {
        o.tunnel_adopt = [](void *ctx, int fd) { static_cast<tunnel::TunnelBridge *>(ctx)->adopt(fd); };
        o.tunnel_adopt_ctx = bridge_.get();
    }
    return {};
}

void TransportTunnel::attach(dataplane::TransportPlane *plane) {
    plane_.store(plane);
    if (bridge_) bridge_->start();
}

bool TransportTunnel::request_end() {
    if (!bridge_ || end_asked_.exchange(true)) return false;
    bridge_->request_end();
    return true;
}

int TransportTunnel::finish(int status, const char *who, unsigned verbose) {
    plane_.store(nullptr);
    if (plain_fd_ >= 0) {
        shutdown(plain_fd_, SHUT_WR); // the connection's reader sees the end
        close(plain_fd_);
        plain_fd_ = -1;
    }
    if (!bridge_) return status;
    bridge_->stop();
    const tunnel::BridgeStats &s = bridge_->stats();
    if (verbose >= 2)
        std::fprintf(stderr,
                     "dpdk-millipede %s: tunnel: accepted %lu opened %lu refused %lu closed %lu resets_sent %lu "
                     "resets_received %lu bytes_in %lu bytes_out %lu stale_records %lu head_blocked %lu\n",
                     who, (unsigned long)s.accepted.load(), (unsigned long)s.opened.load(),
                     (unsigned long)s.refused.load(), (unsigned long)s.closed.load(),
                     (unsigned long)s.resets_sent.load(), (unsigned long)s.resets_received.load(),
                     (unsigned long)s.bytes_in.load(), (unsigned long)s.bytes_out.load(),
                     (unsigned long)s.stale_records.load(), (unsigned long)s.head_blocked.load());
    return bridge_->state() == tunnel::BridgeState::FAILED ? 1 : status;
}

} // namespace millipede::app
