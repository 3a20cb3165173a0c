// CodecPool: chunks deflated on worker threads come back in submission
// order, compressed in place or left raw; the inflate pool turns them back
// into the original bytes, in order, and refuses a corrupted one.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "millipede/pipeio/codec_pool.h"
#include "millipede/stripe/wire.h"

using namespace millipede;

namespace {

constexpr uint32_t kChunk = 256u << 10;

// Even chunks compressible text, odd ones random bytes.
std::vector<uint8_t> make_chunk(uint32_t k) {
    std::vector<uint8_t> v(kChunk - (k % 3) * 1000);
    std::mt19937_64 rng(k);
    if (k % 2 == 0) {
        static const char *w[] = {"alpha ", "beta ", "gamma ", "delta\n", "epsilon "};
        size_t i = 0;
        while (i < v.size())
            for (const char *p = w[rng() % 5]; *p && i < v.size(); p++) v[i++] = static_cast<uint8_t>(*p);
    } else {
        for (auto &b : v) b = static_cast<uint8_t>(rng());
    }
    return v;
}

template <class F> bool wait_for(F f) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < until) {
        if (f()) return true;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return false;
}

} // namespace

TEST(CodecPool, DeflateThenInflateInOrderWithTwoThreadsEach) {
    constexpr uint32_t kChunks = 40;
    std::vector<std::vector<uint8_t>> orig, bufs;
    for (uint32_t k = 0; k < kChunks; k++) {
        orig.push_back(make_chunk(k));
        bufs.push_back(orig.back());
    }
    pipeio::CodecPoolConfig cc;
    cc.threads = 2;
    cc.max_chunk_bytes = kChunk;
    cc.depth = 2;
    pipeio::CodecPool deflate(cc);
    cc.kind = pipeio::CodecKind::DECOMPRESS;
    pipeio::CodecPool inflate(cc);
    deflate.start();
    inflate.start();

    std::vector<pipeio::CodecJob> sent(kChunks);
    uint32_t submitted = 0, done = 0;
    ASSERT_TRUE(wait_for([&] {
        while (submitted < kChunks) {
            pipeio::CodecJob j;
            j.in = bufs[submitted].data();
            j.in_len = static_cast<uint32_t>(bufs[submitted].size());
            j.in_crc32c = stripe::crc32c(j.in, j.in_len);
            j.pass = submitted == 4; // kept raw even though it would shrink
            j.cookie = submitted;
            if (!deflate.submit(j)) break;
            submitted++;
        }
        EXPECT_LE(deflate.outstanding(), deflate.capacity());
        pipeio::CodecJob r;
        while (deflate.poll(r)) {
            EXPECT_EQ(r.cookie, done) << "out of order";
            sent[done++] = r;
        }
        return done == kChunks;
    }));
    for (uint32_t k = 0; k < kChunks; k++) {
        if (k % 2 == 1 || k == 4) {
            EXPECT_EQ(sent[k].out_len, 0u) << k;
            EXPECT_EQ(bufs[k], orig[k]) << "a raw chunk must stay untouched: " << k;
        } else {
            ASSERT_GT(sent[k].out_len, 0u) << k;
            EXPECT_LT(sent[k].out_len, orig[k].size() / 2) << k;
            EXPECT_EQ(sent[k].out_crc32c, stripe::crc32c(bufs[k].data(), sent[k].out_len)) << k;
        }
    }
    EXPECT_EQ(deflate.stats().raw.load(), kChunks / 2 + 1);
    uint64_t payload = 0;
    for (const auto &r : sent) payload += r.out_len;
    EXPECT_EQ(deflate.stats().copied.load(), payload) << "each compressed payload is copied back once";

    // Corrupt one compressed payload: that chunk, and only that one, fails.
    bufs[10][sent[10].out_len / 2] ^= 0x10;
    std::vector<std::vector<uint8_t>> out(kChunks, std::vector<uint8_t>(kChunk));
    submitted = done = 0;
    ASSERT_TRUE(wait_for([&] {
        while (submitted < kChunks) {
            pipeio::CodecJob j;
            j.in = bufs[submitted].data();
            j.compressed = sent[submitted].out_len != 0;
            j.in_len = j.compressed ? sent[submitted].out_len : static_cast<uint32_t>(bufs[submitted].size());
            j.out = out[submitted].data();
            j.out_cap = kChunk;
            j.cookie = submitted;
            if (!inflate.submit(j)) break;
            submitted++;
        }
        pipeio::CodecJob r;
        while (inflate.poll(r)) {
            EXPECT_EQ(r.cookie, done) << "out of order";
            if (done == 10) {
                EXPECT_NE(r.status, codec::InflateStatus::OK);
            } else {
                EXPECT_EQ(r.status, codec::InflateStatus::OK) << done;
                EXPECT_EQ(r.out_len, orig[done].size()) << done;
                EXPECT_EQ(0, std::memcmp(r.result, orig[done].data(), orig[done].size())) << done;
            }
            done++;
        }
        return done == kChunks;
    }));
    inflate.stop();
    deflate.stop();
}

TEST(CodecPool, ConfigIsValidated) {
    pipeio::CodecPoolConfig cc;
    cc.threads = 0;
    EXPECT_THROW(pipeio::CodecPool{cc}, std::invalid_argument);
    cc.threads = 1;
    cc.max_chunk_bytes = stripe::kMaxChunkBytes + 1;
    EXPECT_THROW(pipeio::CodecPool{cc}, std::invalid_argument);
}

TEST(CodecPool, StopIsBoundedWithJobsQueued) {
    pipeio::CodecPoolConfig cc;
    cc.max_chunk_bytes = kChunk;
    pipeio::CodecPool pool(cc);
    auto buf = make_chunk(0);
    pipeio::CodecJob j;
    j.in = buf.data();
    j.in_len = static_cast<uint32_t>(buf.size());
    j.in_crc32c = stripe::crc32c(j.in, j.in_len);
    ASSERT_TRUE(pool.submit(j)); // never started: stop() must still return
    const auto t0 = std::chrono::steady_clock::now();
    pool.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}
