// The tunnel's multiplexing records (docs/wire.md 2.23): several tunnelled
// TCP connections inside the one ordered byte stream the pipe carries in
// each direction. Pure: no EAL, no sockets, no allocation after
// construction; GoogleTest and the fuzzer drive it directly.
//
// A record is an 8-byte header, then `length` payload bytes:
//   type u8 | reserved u8 (0) | length u16 LE | stream id u32 LE
//
// Contract
// - encode_*() write one record into caller memory and return its size
//   (0 when `cap` is too small); never fail otherwise.
// - MuxParser is used by ONE thread. feed() copies at most free_space()
//   bytes in (the caller reads its source only into that room: the parser's
//   buffer is the bound on what it holds, so a slow consumer stops the
//   reads, never grows memory). next() returns the next whole record
//   without consuming it (its payload points into the parser's buffer and
//   stays valid until pop() or feed()); pop() consumes it. Records may
//   arrive split at any byte boundary.
// - Malformed input (unknown type, reserved byte set, a length too large or
//   present where the type has none, stream id 0 on a connection record, a
//   first record that is not HELLO) is counted by reason and makes the
//   parser FAILED for good: the byte stream has no resynchronisation point,
//   so the caller ends the tunnel (resets every connection).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace millipede::tunnel {

enum class RecordType : uint8_t {
    HELLO = 'H', // stream 0; payload: "MPTN", version u8, role u8 (first record in each direction)
    OPEN = 'O',  // a connection was accepted at the terminating end; open one at the far end
    DATA = 'D',  // payload bytes of one connection, in order
    FIN = 'F',   // the sender's half is closed (half-close); the other half may go on
    RST = 'R',   // the connection is aborted; both ends forget it
    BYE = 'B',   // stream 0: the tunnel ends; reset every connection, then end the stream
};

inline constexpr size_t kHeaderBytes = 8;
inline constexpr size_t kMaxPayload = 16384; // bytes of one DATA record at most
inline constexpr size_t kMaxRecord = kHeaderBytes + kMaxPayload;
inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kHelloPayload = 6;

enum class Role : uint8_t { TERMINATE = 1, INITIATE = 2 };

struct Record {
    RecordType type = RecordType::DATA;
    uint32_t stream = 0;
    const uint8_t *payload = nullptr;
    uint16_t length = 0;
};

// Each returns the record's size in bytes, or 0 if cap is too small.
size_t encode_header(uint8_t *out, size_t cap, RecordType t, uint32_t stream, uint16_t length);
size_t encode_hello(uint8_t *out, size_t cap, Role role);
// payload: at most kMaxPayload bytes (else 0).
size_t encode_data(uint8_t *out, size_t cap, uint32_t stream, const uint8_t *payload, size_t n);
inline size_t encode_control(uint8_t *out, size_t cap, RecordType t, uint32_t stream) {
    return encode_header(out, cap, t, stream, 0);
}

enum class Malformed : uint8_t {
    UNKNOWN_TYPE,
    RESERVED_SET,
    BAD_LENGTH,   // over kMaxPayload, or non-zero on OPEN/FIN/RST/BYE, or a HELLO not 6 bytes
    BAD_STREAM,   // stream 0 on OPEN/DATA/FIN/RST, or non-zero on HELLO/BYE
    NO_HELLO,     // the first record is not a HELLO
    BAD_HELLO,    // HELLO's magic or version wrong, or a second HELLO
    COUNT
};
const char *malformed_name(Malformed m);

enum class Next : uint8_t { RECORD, NEED_MORE, FAILED };

class MuxParser {
  public:
    // capacity: bytes buffered at most (>= kMaxRecord).
    explicit MuxParser(size_t capacity = 4 * kMaxRecord);

    size_t free_space() const { return cap_ - (end_ - begin_); }
    uint8_t *write_ptr();                // room for free_space() bytes (compacts first)
    void commit(size_t n);               // n bytes were written at write_ptr()
    size_t feed(const uint8_t *p, size_t n); // copies min(n, free_space()); returns that

    Next next(Record &r);  // see the contract
    void pop();            // consume the record next() returned

    bool failed() const { return failed_; }
    Malformed failure() const { return failure_; }
    Role peer_role() const { return peer_role_; } // after the HELLO
    bool hello_seen() const { return hello_seen_; }
    uint64_t malformed(Malformed m) const { return counts_[static_cast<size_t>(m)]; }
    size_t buffered() const { return end_ - begin_; }

  private:
    Next fail(Malformed m);
    size_t cap_;
    std::unique_ptr<uint8_t[]> buf_;
    size_t begin_ = 0, end_ = 0;
    size_t pending_ = 0; // size of the record next() returned (0: none)
    bool failed_ = false, hello_seen_ = false;
    Malformed failure_ = Malformed::COUNT;
    Role peer_role_ = Role::TERMINATE;
    Record last_;
    std::array<uint64_t, static_cast<size_t>(Malformed::COUNT)> counts_{};
};

} // namespace millipede::tunnel
