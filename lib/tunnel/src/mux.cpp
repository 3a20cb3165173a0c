// The tunnel's records: encoders and the bounded incremental parser.
#include "millipede/tunnel/mux.h"

#include <cstring>
#include <stdexcept>

namespace millipede::tunnel {

namespace {
constexpr uint8_t kMagic[4] = {'M', 'P', 'T', 'N'};

bool known_type(uint8_t t) {
    switch (static_cast<RecordType>(t)) {
    case RecordType::HELLO:
    case RecordType::OPEN:
    case RecordType::DATA:
    case RecordType::FIN:
    case RecordType::RST:
    case RecordType::BYE: return true;
    }
    return false;
}
} // namespace

size_t encode_header(uint8_t *out, size_t cap, RecordType t, uint32_t stream, uint16_t length) {
    if (cap < kHeaderBytes) return 0;
    out[0] = static_cast<uint8_t>(t);
    out[1] = 0;
    out[2] = static_cast<uint8_t>(length);
    out[3] = static_cast<uint8_t>(length >> 8);
    for (int i = 0; i < 4; i++) out[4 + i] = static_cast<uint8_t>(stream >> (8 * i));
    return kHeaderBytes;
}

size_t encode_hello(uint8_t *out, size_t cap, Role role) {
    if (cap < kHeaderBytes + kHelloPayload) return 0;
    encode_header(out, cap, RecordType::HELLO, 0, kHelloPayload);
    std::memcpy(out + kHeaderBytes, kMagic, 4);
    out[kHeaderBytes + 4] = kVersion;
    out[kHeaderBytes + 5] = static_cast<uint8_t>(role);
    return kHeaderBytes + kHelloPayload;
}

size_t encode_data(uint8_t *out, size_t cap, uint32_t stream, const uint8_t *payload, size_t n) {
    if (n > kMaxPayload || cap < kHeaderBytes + n) return 0;
    encode_header(out, cap, RecordType::DATA, stream, static_cast<uint16_t>(n));
    if (n) std::memcpy(out + kHeaderBytes, payload, n);
    return kHeaderBytes + n;
}

const char *malformed_name(Malformed m) {
    switch (m) {
    case Malformed::UNKNOWN_TYPE: return "unknown_type";
    case Malformed::RESERVED_SET: return "reserved_set";
    case Malformed::BAD_LENGTH: return "bad_length";
    case Malformed::BAD_STREAM: return "bad_stream";
    case Malformed::NO_HELLO: return "no_hello";
    case Malformed::BAD_HELLO: return "bad_hello";
    case Malformed::COUNT: break;
    }
    return "?";
}

MuxParser::MuxParser(size_t capacity) : cap_(capacity) {
    if (capacity < kMaxRecord) throw std::invalid_argument("tunnel parser: capacity below one record");
    buf_ = std::make_unique<uint8_t[]>(capacity);
}

uint8_t *MuxParser::write_ptr() {
    if (begin_ && !pending_) { // compact: free room is always contiguous at the end
        std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    return buf_.get() + end_;
}

void MuxParser::commit(size_t n) { end_ += n; }

size_t MuxParser::feed(const uint8_t *p, size_t n) {
    if (pending_) return 0; // a returned record's payload must stay where it is
    uint8_t *w = write_ptr();
    const size_t room = cap_ - end_;
    if (n > room) n = room;
    std::memcpy(w, p, n);
    end_ += n;
    return n;
}

Next MuxParser::fail(Malformed m) {
    failed_ = true;
    failure_ = m;
    counts_[static_cast<size_t>(m)]++;
    return Next::FAILED;
}

Next MuxParser::next(Record &r) {
    if (failed_) return Next::FAILED;
    if (pending_) { // asked again before pop(): the same record
        r = last_;
        return Next::RECORD;
    }
    const size_t have = end_ - begin_;
    if (have < kHeaderBytes) return Next::NEED_MORE;
    const uint8_t *h = buf_.get() + begin_;
    // The header alone decides whether the record can be whole: judge it
    // before waiting for a payload that a bad length would never complete.
    if (!known_type(h[0])) return fail(Malformed::UNKNOWN_TYPE);
    if (h[1] != 0) return fail(Malformed::RESERVED_SET);
    const auto t = static_cast<RecordType>(h[0]);
    const uint16_t len = static_cast<uint16_t>(h[2] | h[3] << 8);
    const uint32_t stream = uint32_t(h[4]) | uint32_t(h[5]) << 8 | uint32_t(h[6]) << 16 | uint32_t(h[7]) << 24;
    if (!hello_seen_ && t != RecordType::HELLO) return fail(Malformed::NO_HELLO);
    switch (t) {
    case RecordType::HELLO:
        if (hello_seen_) return fail(Malformed::BAD_HELLO);
        if (len != kHelloPayload) return fail(Malformed::BAD_LENGTH);
        if (stream != 0) return fail(Malformed::BAD_STREAM);
        break;
    case RecordType::BYE:
        if (len != 0) return fail(Malformed::BAD_LENGTH);
        if (stream != 0) return fail(Malformed::BAD_STREAM);
        break;
    case RecordType::DATA:
        if (len == 0 || len > kMaxPayload) return fail(Malformed::BAD_LENGTH);
        if (stream == 0) return fail(Malformed::BAD_STREAM);
        break;
    default: // OPEN, FIN, RST
        if (len != 0) return fail(Malformed::BAD_LENGTH);
        if (stream == 0) return fail(Malformed::BAD_STREAM);
        break;
    }
    if (have < kHeaderBytes + len) return Next::NEED_MORE;
    const uint8_t *payload = h + kHeaderBytes;
    if (t == RecordType::HELLO) {
        if (std::memcmp(payload, kMagic, 4) != 0 || payload[4] != kVersion ||
            (payload[5] != uint8_t(Role::TERMINATE) && payload[5] != uint8_t(Role::INITIATE)))
            return fail(Malformed::BAD_HELLO);
        hello_seen_ = true;
        peer_role_ = static_cast<Role>(payload[5]);
    }
    r.type = t;
    r.stream = stream;
    r.length = len;
    r.payload = payload;
    pending_ = kHeaderBytes + len;
    last_ = r;
    return Next::RECORD;
}

void MuxParser::pop() {
    begin_ += pending_;
    pending_ = 0;
    if (begin_ == end_) begin_ = end_ = 0;
}

} // namespace millipede::tunnel
