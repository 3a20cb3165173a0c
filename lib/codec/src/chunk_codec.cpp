// Per-chunk igzip level 1 and its verified inverse (docs/wire.md 2.20).
#include "millipede/codec/chunk_codec.h"

#include <cstring>
#include <stdexcept>

#include <isa-l/igzip_lib.h>

#include "millipede/net/bytes.h"
#include "millipede/stripe/wire.h"

namespace millipede::codec {

void encode_prefix(uint8_t *out, const Prefix &p) {
    net::store_le32(out, p.original_len);
    net::store_le32(out + 4, p.original_crc32c);
}

Prefix decode_prefix(const uint8_t *in) { return Prefix{net::load_le32(in), net::load_le32(in + 4)}; }

struct Compressor::Stream {
    isal_zstream z;
};

Compressor::Compressor(uint32_t max_chunk_bytes)
    : max_(max_chunk_bytes), level_buf_(new uint8_t[ISAL_DEF_LVL1_DEFAULT]), stream_(std::make_unique<Stream>()) {
    if (max_chunk_bytes == 0 || max_chunk_bytes > stripe::kMaxChunkBytes)
        throw std::invalid_argument("compressor: max_chunk_bytes must be 1..2097152");
}

Compressor::~Compressor() = default;

uint32_t Compressor::compress(const uint8_t *in, uint32_t n, uint32_t in_crc32c, uint8_t *out, uint32_t out_cap) {
    if (n == 0 || n > max_ || out_cap <= kPrefixSize) return 0;
    // Only a payload shorter than the original is worth sending: cap the
    // deflate output at n - prefix - 1 and let ISA-L report the overflow.
    const uint64_t room = std::min<uint64_t>(out_cap, n - 1ull);
    if (room <= kPrefixSize) return 0;
    isal_zstream &z = stream_->z;
    isal_deflate_stateless_init(&z);
    z.level = 1;
    z.level_buf = level_buf_.get();
    z.level_buf_size = ISAL_DEF_LVL1_DEFAULT;
    z.gzip_flag = IGZIP_DEFLATE; // raw deflate: the record carries the CRCs
    z.end_of_stream = 1;
    z.flush = NO_FLUSH;
    z.next_in = const_cast<uint8_t *>(in);
    z.avail_in = n;
    z.next_out = out + kPrefixSize;
    z.avail_out = static_cast<uint32_t>(room - kPrefixSize);
    if (isal_deflate_stateless(&z) != COMP_OK || z.avail_in != 0) return 0; // STATELESS_OVERFLOW: raw
    encode_prefix(out, Prefix{n, in_crc32c});
    return static_cast<uint32_t>(kPrefixSize + z.total_out);
}

struct Decompressor::State {
    inflate_state s;
};

Decompressor::Decompressor(uint32_t max_chunk_bytes) : max_(max_chunk_bytes), state_(std::make_unique<State>()) {
    if (max_chunk_bytes == 0 || max_chunk_bytes > stripe::kMaxChunkBytes)
        throw std::invalid_argument("decompressor: max_chunk_bytes must be 1..2097152");
}

Decompressor::~Decompressor() = default;

InflateStatus Decompressor::decompress(const uint8_t *payload, uint32_t n, uint8_t *out, uint32_t out_cap,
                                       uint32_t &out_len) {
    out_len = 0;
    if (n <= kPrefixSize) return InflateStatus::TOO_SHORT;
    const Prefix p = decode_prefix(payload);
    const uint32_t bound = std::min(out_cap, max_);
    if (p.original_len == 0 || p.original_len > bound) return InflateStatus::BAD_LENGTH;
    inflate_state &s = state_->s;
    isal_inflate_init(&s);
    s.crc_flag = ISAL_DEFLATE; // raw deflate, no wrapper
    s.next_in = const_cast<uint8_t *>(payload + kPrefixSize);
    s.avail_in = n - static_cast<uint32_t>(kPrefixSize);
    s.next_out = out;
    // One byte more than announced: a stream that inflates to more than the
    // prefix says is caught as a mismatch, not silently cut (when there is room).
    s.avail_out = p.original_len < bound ? p.original_len + 1 : p.original_len;
    const int r = isal_inflate_stateless(&s);
    if (r == ISAL_OUT_OVERFLOW) return InflateStatus::LENGTH_MISMATCH;
    if (r != ISAL_DECOMP_OK) return r == ISAL_END_INPUT ? InflateStatus::LENGTH_MISMATCH : InflateStatus::BAD_STREAM;
    if (s.total_out != p.original_len) return InflateStatus::LENGTH_MISMATCH;
    if (s.avail_in != 0) return InflateStatus::TRAILING_BYTES;
    if (stripe::crc32c(out, p.original_len) != p.original_crc32c) return InflateStatus::CRC_MISMATCH;
    out_len = p.original_len;
    return InflateStatus::OK;
}

const char *inflate_status_text(InflateStatus s) {
    switch (s) {
    case InflateStatus::OK: return "ok";
    case InflateStatus::TOO_SHORT: return "compressed payload shorter than its 8-byte prefix plus one byte";
    case InflateStatus::BAD_LENGTH: return "original length in the prefix is 0 or above the chunk limit";
    case InflateStatus::BAD_STREAM: return "not a valid deflate stream";
    case InflateStatus::LENGTH_MISMATCH: return "deflate stream does not inflate to the length in the prefix";
    case InflateStatus::TRAILING_BYTES: return "bytes after the end of the deflate stream";
    case InflateStatus::CRC_MISMATCH: return "inflated bytes fail the CRC32C of the original bytes";
    }
    return "unknown";
}

} // namespace millipede::codec
