// What a session core (the stripe side: TxCore, RxCore) and a leg host (a
// worker lcore's TCP connections: LegHost) tell each other. They may run on
// different lcores: share-nothing, every connection lives on one host for
// its whole life, and these fixed-size messages are all that crosses.
//
// Contract
// - Commands flow core -> host through one queue per host; reports flow
//   host -> core. Each queue keeps order (FIFO); both sides process every
//   message exactly once.
// - Memory named by a message stays valid until the other side is done with
//   it: WRITE_REF bytes are held by the reference (or, ref 0, by the core
//   until the command has run: the in-process pipeline, and the data
//   plane's TunnelEnds, which keeps them until TCP acknowledges them, as no
//   acknowledgement can come before the copy);
//   INPUT spans live in the connection's receive queue until the core
//   CONSUMEs them, and a host destroys a connection only after the core's
//   RELEASE, so no span outlives its memory.
// - Credit: a connection accepts bytes up to `window_end` (stream offset) as
//   last reported; the core never writes beyond it, so a write never fails.
// - Pure data, no EAL; 64 bytes each (one cache line on the rings).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "millipede/tcp/buffers.h"
#include "millipede/tcp/connection.h"

namespace millipede::session {

// A connection's name on its host: (host index << 20) | slot. Never 0.
using ConnHandle = uint32_t;
inline constexpr uint32_t kHostShift = 20;
inline constexpr uint32_t kSlotMask = (1u << kHostShift) - 1;
inline uint32_t handle_host(ConnHandle h) { return h >> kHostShift; }
inline uint32_t handle_slot(ConnHandle h) { return (h & kSlotMask) - 1; }
inline ConnHandle make_handle(uint32_t host, uint32_t slot) { return (host << kHostShift) | (slot + 1); }
// Handles of accepted connections carry this bit, those a core opens with
// CONNECT never do: one host can serve both (full duplex: a TxCore's legs
// and an RxCore's on the same workers) without their handles colliding, and
// a report finds its core by its handle alone.
inline constexpr uint32_t kAcceptedBit = 1u << (kHostShift - 1);
inline constexpr uint32_t kConnectIdMask = kAcceptedBit - 1; // ids a core may give a CONNECT
inline bool handle_accepted(ConnHandle h) { return (h & kAcceptedBit) != 0; }

inline constexpr size_t kInlineBytes = 40; // >= every stripe record header (stripe::kMaxRecordHeader)
// INPUT spans of one connection a core may hold at once (not yet CONSUMEd
// whole); a host reports no more until the core consumed some.
inline constexpr uint32_t kMaxSpansInFlight = 64;

enum class CommandType : uint8_t {
    CONNECT,      // tx: open `leg` to endpoints; the host answers CONNECTED or CONNECT_FAILED
    WRITE_INLINE, // append bytes carried in the message
    WRITE_REF,    // append (ptr, n) held by `ref` (ref 0: copied when the command runs)
    FLUSH,        // transmit what the writes queued
    CONSUME,      // the core has taken `n` more input bytes
    SHUTDOWN,     // FIN after everything written
    ABORT,        // RST now; the connection is then gone (no RELEASE needed)
    RETIRE,       // viamillipede: FIN, keep serving the peer until closed, report nothing more
    RELEASE,      // the core holds no more spans of an ENDED connection: destroy it
    BREAK,        // fault injection (chaos): fail the connection as a dead link would; ENDED follows
};

struct LegCommand {
    CommandType type = CommandType::FLUSH;
    uint8_t len = 0;  // WRITE_INLINE: bytes in `bytes`
    uint16_t leg = 0; // the core's leg index (for logs and CONNECT)
    ConnHandle handle = 0;
    union {
        tcp::Endpoints ep; // CONNECT
        struct {
            const uint8_t *p;
            uint32_t n;
            tcp::BufRef ref;
        } ref;            // WRITE_REF
        uint8_t bytes[kInlineBytes]; // WRITE_INLINE
        uint64_t n;       // CONSUME
    };
    LegCommand() : n(0) {}
};
static_assert(sizeof(LegCommand) <= 64, "one cache line per command");

enum class ReportType : uint8_t {
    CONNECTED,      // tx: the handshake completed; credit follows in `credit`
    CONNECT_FAILED, // tx: refused, SYN timed out or the connect deadline passed (connection gone)
    ACCEPTED,       // rx: a connection completed its handshake on this host
    INPUT,          // the next `n` bytes of the connection's stream at `p`
    CREDIT,         // new window_end / acked figures
    PEER_FIN,       // the peer's FIN arrived in order (after every INPUT of it)
    ENDED,          // terminal (reset, timed out, watchdog); await RELEASE
    CLOSED,         // after SHUTDOWN: closed in order (or TIME-WAIT); await RELEASE
};

// Why a connection ENDED.
enum class EndCause : uint8_t {
    RESET,        // the peer reset it
    TIMED_OUT,    // TCP's own retry bound, keep-alive or persist
    WATCHDOG,     // no acknowledgement after RTO expiry: declared dead early
    CLOSED,       // closed (our FIN and theirs) or aborted
    NO_ROOM,      // rx: the host had no slot for another connection (never accepted)
};

struct LegReport {
    ReportType type = ReportType::CREDIT;
    EndCause cause = EndCause::CLOSED;
    tcp::CloseReason reason = tcp::CloseReason::NONE;
    uint16_t leg = 0; // echoes the CONNECT's leg (tx); 0 on rx
    ConnHandle handle = 0;
    union {
        struct {
            uint64_t acked;      // payload bytes the peer acknowledged (TCP), since connect
            uint64_t window_end; // the core may write up to this stream offset
        } credit;                // CONNECTED, CREDIT, PEER_FIN, ENDED, CLOSED (acked then)
        struct {
            const uint8_t *p;
            uint32_t n;
        } input;                 // INPUT
        tcp::Endpoints ep;       // ACCEPTED
    };
    LegReport() : credit{0, 0} {}
};
static_assert(sizeof(LegReport) <= 64, "one cache line per report");

// Where a core sends commands (one queue per host) and a host its reports.
// send() returns false when the queue is full: the caller keeps the message
// and retries later (both sides are written so that they can).
class CommandOut {
  public:
    virtual ~CommandOut() = default;
    virtual bool send(uint32_t host, const LegCommand &c) = 0;
    virtual uint32_t hosts() const = 0;
    // Chooses the host for a new outgoing connection (tx): the least loaded.
    virtual uint32_t pick_host(const tcp::Endpoints &ep) = 0;
};

class ReportOut {
  public:
    virtual ~ReportOut() = default;
    virtual bool send(const LegReport &r) = 0;
};

// A fixed-capacity FIFO for in-process queues (the simulator, tests and the
// single-threaded pipeline); allocated once.
template <class T>
class FixedFifo {
  public:
    explicit FixedFifo(size_t cap) : buf_(new T[cap]), cap_(cap) {}
    bool push(const T &v) {
        if (n_ == cap_) return false;
        buf_[(head_ + n_) % cap_] = v;
        n_++;
        return true;
    }
    bool pop(T &v) {
        if (!n_) return false;
        v = buf_[head_];
        head_ = (head_ + 1) % cap_;
        n_--;
        return true;
    }
    size_t size() const { return n_; }

  private:
    std::unique_ptr<T[]> buf_;
    size_t cap_, head_ = 0, n_ = 0;
};

} // namespace millipede::session
