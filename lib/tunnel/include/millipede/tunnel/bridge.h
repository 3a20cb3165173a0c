// TunnelBridge: the tunnelled TCP connections of `terminate PORT` /
// `initiate HOST PORT` (docs/wire.md 2.23), between the host's kernel TCP
// stack and the pipe's two byte streams.
//
// The data plane reads its input from plane_input_fd() and writes its
// output to plane_output_fd() (pipes) exactly as it reads stdin and writes
// stdout, so striping, parity, compress, key and charmode apply unchanged;
// this thread multiplexes the connections into those streams (mux.h).
//
// Contract
// - Threads: create(), start(), stop() and the destructor on the control
//   thread (main); one bridge thread (`mp-tunnel`, a plain thread like the
//   pipe threads: the only place its sockets see a system call). stats(),
//   state() are safe from any thread; message() once state() is FAILED or
//   ENDED. request_end() is async-signal-safe (one eventfd write).
// - Bounded: each connection buffers at most conn_buffer bytes toward its
//   socket; when a record does not fit, the bridge stops reading the pipe
//   (head-of-line blocking: the pipe's reorder window then fills and the
//   legs' TCP windows push back on the far end). Toward the pipe at most
//   pipe_buffer + one record is held; sockets are read only when it has
//   room. Nothing grows with the traffic.
// - Every wait is bounded: poll() slices of 100 ms; a connection the far end
//   asked for that does not connect within connect_timeout_ms is reset
//   (RST both ways).
// - End: request_end() (or a BYE from the far end) resets every connection,
//   sends BYE, and ends the input stream (EOF on plane_input_fd), so the
//   plane ends its sending direction; the bridge keeps draining the output
//   stream until stop(). stop() resets whatever is left and joins.
// - Failure (a malformed record, the far end of the wrong role): every
//   connection is reset, state FAILED, message() says why in one line and
//   on_fail(ctx) is called once from the bridge thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/socket.h>

#include "millipede/tunnel/mux.h"

namespace millipede::tunnel {

struct BridgeConfig {
    Role role = Role::TERMINATE;
    uint16_t listen_port = 0;              // terminate: kernel TCP port to accept on (all addresses)
    // terminate: no kernel listener; the data plane accepts the connections
    // on its own ports' addresses (`--terminate-on ports`) and hands each to
    // adopt() as one end of a socketpair (see adopt()).
    bool accept_from_plane = false;
    std::string host;                      // initiate: where each tunnelled connection goes
    uint16_t port = 0;
    size_t conn_buffer = 256u << 10;       // bytes toward one socket at most
    size_t pipe_buffer = 256u << 10;       // bytes toward the plane at most (+ one record)
    uint32_t connect_timeout_ms = 10'000;  // initiate: a connect() that takes longer is reset
    // More at once are refused (accepted, then reset). Memory: each holds
    // up to 1.5 x conn_buffer toward its socket only while that socket is
    // slower than the pipe (grown on demand): 256 x 384 KiB = 96 MiB at worst.
    uint32_t max_connections = 256;
    unsigned verbose = 0;                  // 1: a line per connection event on stderr
    void (*on_fail)(void *ctx) = nullptr;
    void *on_fail_ctx = nullptr;
    std::vector<int> cpus;                 // CPUs the thread may run on (empty: inherit)
};

enum class BridgeState : uint8_t { IDLE, RUNNING, ENDED, FAILED };

struct BridgeStats {
    std::atomic<uint64_t> accepted{0};      // terminate: connections accepted
    std::atomic<uint64_t> opened{0};        // initiate: connections that reached HOST PORT
    std::atomic<uint64_t> refused{0};       // over max_connections, or connect failed / timed out
    std::atomic<uint64_t> closed{0};        // ended with FIN both ways
    std::atomic<uint64_t> resets_sent{0};   // RST records sent
    std::atomic<uint64_t> resets_received{0};
    std::atomic<uint64_t> bytes_in{0};      // read from sockets into the pipe
    std::atomic<uint64_t> bytes_out{0};     // written from the pipe to sockets
    std::atomic<uint64_t> stale_records{0}; // DATA/FIN for a connection already reset here
    std::atomic<uint64_t> head_blocked{0};  // times a full connection buffer held the pipe
    std::atomic<uint64_t> active{0};
};

class TunnelBridge {
  public:
    // terminate: binds and listens (so a busy port is reported before EAL
    // starts); initiate: resolves HOST once. Makes the two pipes. nullptr
    // and one line in err on failure.
    static std::unique_ptr<TunnelBridge> create(const BridgeConfig &cfg, std::string &err);
    ~TunnelBridge();
    TunnelBridge(const TunnelBridge &) = delete;
    TunnelBridge &operator=(const TunnelBridge &) = delete;

    int plane_input_fd() const { return to_plane_rd_; }    // the plane reads this (its "stdin")
    int plane_output_fd() const { return from_plane_wr_; } // the plane writes this (its "stdout")
    uint16_t listen_port() const { return bound_port_; }   // terminate: the port bound (0 in cfg: ephemeral)

    void start();
    // accept_from_plane: a connection the plane accepted, as a connected
    // AF_UNIX stream socket whose other end the plane pumps to and from its
    // TCP connection. Any thread; the bridge owns `fd` from here on, also
    // when it refuses it (over max_connections or ending: closed at once).
    // The plane's end speaks like a kernel TCP socket would: shutdown(SHUT_WR)
    // is the peer's FIN; a close before that is the peer's reset. The
    // bridge's end answers in kind: shutdown(SHUT_WR) after a FIN record,
    // close() on a reset.
    void adopt(int fd);
    void request_end(); // async-signal-safe
    void stop();        // bounded; idempotent

    BridgeState state() const { return state_.load(std::memory_order_acquire); }
    const std::string &message() const { return message_; }
    const BridgeStats &stats() const { return stats_; }

    struct Conn;

  private:
    explicit TunnelBridge(const BridgeConfig &cfg);
    void run();
    bool step(int timeout_ms);
    void pump_from_plane();
    bool flush_to_plane();
    void accept_new();
    void adopt_new();
    void add_accepted(int fd, bool adopted);
    void read_socket(Conn &c);
    void write_socket(Conn &c);
    void open_far(uint32_t id);
    void reset(Conn &c, bool tell_far);
    void forget(uint32_t id);
    void reset_all(bool tell_far);
    void begin_end(const char *why);
    void fail(const std::string &why);
    bool queue_control(RecordType t, uint32_t id);
    Conn *find(uint32_t id);
    void log(const char *fmt, ...);

    BridgeConfig cfg_;
    int listen_fd_ = -1, wake_fd_ = -1;
    int to_plane_rd_ = -1, to_plane_wr_ = -1;     // bridge writes, plane reads
    int from_plane_rd_ = -1, from_plane_wr_ = -1; // plane writes, bridge reads
    uint16_t bound_port_ = 0;
    sockaddr_storage far_{};
    socklen_t far_len_ = 0;
    std::vector<std::unique_ptr<Conn>> conns_;
    std::mutex adopt_mu_;
    std::vector<int> adopt_fds_; // adopt()ed, not yet taken by the bridge thread
    std::vector<struct pollfd> poll_set_; // rebuilt each step (capacity kept)
    std::vector<uint32_t> poll_ids_;      // connection id of each socket entry
    std::vector<uint8_t> to_plane_; // encoded records not yet written to the pipe
    size_t to_plane_head_ = 0;
    MuxParser parser_;
    uint32_t next_id_ = 1;
    uint32_t blocked_on_ = 0; // connection whose full buffer holds the pipe (0: none)
    bool ending_ = false, input_closed_ = false, hello_sent_ = false, output_eof_ = false;
    std::atomic<bool> stop_{false};
    std::atomic<bool> end_requested_{false}; // request_end()
    std::atomic<BridgeState> state_{BridgeState::IDLE};
    std::string message_ = "idle";
    std::thread thread_;
    BridgeStats stats_;
};

} // namespace millipede::tunnel
