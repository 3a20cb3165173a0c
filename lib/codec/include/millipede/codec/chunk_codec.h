// Chunk compression for the `compress` word: each chunk on its own, ISA-L
// igzip level 1, raw deflate (no gzip/zlib wrapper: the chunk record has
// its own CRCs). docs/wire.md 2.20 defines the payload:
//
//   off 0  u32  original length (1 .. the receiver's chunk limit)
//   off 4  u32  CRC32C of the original bytes
//   off 8  ...  raw deflate stream of exactly those bytes
//
// Contract
// - Pure: no EAL, no threads, no clock. A Compressor / Decompressor is not
//   thread-safe: one per worker thread. Construction allocates (ISA-L's
//   level-1 hash buffer, the inflate state) and may throw std::bad_alloc
//   or std::invalid_argument; compress() and decompress() never allocate,
//   never throw, and write only inside the buffer they are given.
// - compress() is stateless per chunk (no history across chunks), so any
//   worker can compress any chunk and the receiver can inflate chunks in
//   any order and in parallel.
// - decompress() trusts nothing in the payload: the original length must
//   be 1..max_chunk_bytes and fit the output buffer before a byte is
//   inflated, the deflate stream must end exactly at the payload's end and
//   produce exactly that many bytes, and their CRC32C must match. Any
//   failure is a named result; the output buffer's contents are then
//   undefined and must not be written anywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace millipede::codec {

inline constexpr size_t kPrefixSize = 8;

struct Prefix {
    uint32_t original_len = 0;
    uint32_t original_crc32c = 0;
};
void encode_prefix(uint8_t *out, const Prefix &p); // kPrefixSize bytes
Prefix decode_prefix(const uint8_t *in);            // kPrefixSize bytes

class Compressor {
  public:
    // max_chunk_bytes: the largest chunk compress() will be given (1..2 MiB).
    explicit Compressor(uint32_t max_chunk_bytes);
    ~Compressor();
    Compressor(const Compressor &) = delete;
    Compressor &operator=(const Compressor &) = delete;

    // Compresses in[0..n) (n = 1..max_chunk_bytes) into out as a compressed
    // payload (prefix + deflate). `in_crc32c` is the CRC32C of in[0..n)
    // (the reader computed it while the bytes were hot). Returns the payload
    // length when it is strictly smaller than n, 0 when the chunk does not
    // shrink (send it raw). out_cap may be anything; nothing is written past
    // it. out must not overlap in.
    uint32_t compress(const uint8_t *in, uint32_t n, uint32_t in_crc32c, uint8_t *out, uint32_t out_cap);

  private:
    uint32_t max_;
    std::unique_ptr<uint8_t[]> level_buf_;
    struct Stream;
    std::unique_ptr<Stream> stream_;
};

enum class InflateStatus : uint8_t {
    OK,
    TOO_SHORT,       // payload shorter than the prefix plus one byte of stream
    BAD_LENGTH,      // original length 0 or above the limit / the output buffer
    BAD_STREAM,      // not a valid deflate stream (ISA-L refused it)
    LENGTH_MISMATCH, // the stream inflates to more or fewer bytes than the prefix says
    TRAILING_BYTES,  // bytes after the end of the deflate stream
    CRC_MISMATCH,    // inflated bytes fail the prefix's CRC32C
};
const char *inflate_status_text(InflateStatus s);

class Decompressor {
  public:
    explicit Decompressor(uint32_t max_chunk_bytes);
    ~Decompressor();
    Decompressor(const Decompressor &) = delete;
    Decompressor &operator=(const Decompressor &) = delete;

    // Inflates a compressed payload into out[0..out_cap). On OK, out_len is
    // the original length and the bytes verified against the prefix's
    // CRC32C. The bound is min(out_cap, max_chunk_bytes), never the wire.
    InflateStatus decompress(const uint8_t *payload, uint32_t n, uint8_t *out, uint32_t out_cap, uint32_t &out_len);

  private:
    uint32_t max_;
    struct State;
    std::unique_ptr<State> state_;
};

} // namespace millipede::codec
