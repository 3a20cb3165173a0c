// A test double for the AEAD (stripe::Aead): deterministic, keyed, and it
// notices any changed byte; shared by the unit tests that need a key.
#pragma once

#include <cstring>

#include "millipede/stripe/aead.h"
#include "millipede/stripe/wire.h"

namespace stripe_test {

using namespace millipede::stripe;

// Not a cipher: a keyed XOR stream and a keyed CRC-64 as the "tag". Enough
// to tell keys apart and to catch any changed byte, which is all the cores
// rely on.
class FakeAead : public Aead {
  public:
    explicit FakeAead(uint64_t key) : key_(key) {}
    bool start_session(uint64_t session_id) override {
        skey_ = crc64(reinterpret_cast<const uint8_t *>(&session_id), 8, key_ * 0x9E3779B97F4A7C15ull + 1);
        started_ = true;
        return true;
    }
    bool proof(uint32_t label, uint64_t counter, const uint8_t aad[kAeadAadBytes], uint8_t tag[kAeadTagBytes]) override {
        return started_ && mac(label, counter, aad, nullptr, 0, tag);
    }
    bool seal(uint64_t seq, const uint8_t aad[kAeadAadBytes], uint8_t *buf, uint32_t len) override {
        if (!started_) return false;
        seals++;
        xor_stream(seq, buf, len);
        return mac(kNonceChunk, seq, aad, buf, len, buf + len);
    }
    bool open(uint64_t seq, const uint8_t aad[kAeadAadBytes], uint8_t *buf, uint32_t len) override {
        uint8_t tag[kAeadTagBytes];
        const uint32_t n = len - kAeadTagBytes;
        if (!started_ || !mac(kNonceChunk, seq, aad, buf, n, tag) || std::memcmp(tag, buf + n, kAeadTagBytes) != 0) {
            std::memset(buf, 0, len);
            return false;
        }
        xor_stream(seq, buf, n);
        return true;
    }
    uint64_t seals = 0;

  private:
    void xor_stream(uint64_t seq, uint8_t *p, uint32_t n) const {
        uint64_t x = skey_ ^ (seq * 0x9E3779B97F4A7C15ull);
        for (uint32_t i = 0; i < n; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            p[i] ^= static_cast<uint8_t>(x >> 56);
        }
    }
    bool mac(uint32_t label, uint64_t counter, const uint8_t *aad, const uint8_t *p, uint32_t n, uint8_t *tag) const {
        uint64_t h = crc64(reinterpret_cast<const uint8_t *>(&skey_), 8, label ^ counter);
        h = crc64(aad, kAeadAadBytes, h);
        h = crc64(p, n, h);
        std::memcpy(tag, &h, 8);
        h = crc64(reinterpret_cast<const uint8_t *>(&h), 8, skey_);
        std::memcpy(tag + 8, &h, 8);
        return true;
    }
    uint64_t key_, skey_ = 0;
    bool started_ = false;
};

} // namespace stripe_test
