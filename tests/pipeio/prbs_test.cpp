// PRBS: the documented stream, chunking independence, the verifier, and the
// reader's generator feeding the writer's verifier end to end.
#include <random>
#include <string>

#include "helpers.h"
#include "millipede/pipeio/prbs.h"

using namespace millipede::pipeio;
using namespace pio_test;

namespace {

// An independent transcription of the contract in prbs.h.
std::vector<uint8_t> reference(uint64_t seed, size_t n) {
    uint64_t x = seed + 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    uint64_t s = x ^ (x >> 31);
    if (s == 0) s = 0x9e3779b97f4a7c15ull;
    std::vector<uint8_t> out;
    while (out.size() < n) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        uint64_t w = s * 0x2545f4914f6cdd1dull;
        for (int b = 0; b < 8 && out.size() < n; b++) out.push_back(static_cast<uint8_t>(w >> (8 * b)));
    }
    return out;
}

std::vector<uint8_t> generate_chunked(uint64_t seed, size_t n, std::mt19937 &rng, size_t max_piece) {
    PrbsGenerator g(seed);
    std::vector<uint8_t> out(n);
    size_t off = 0;
    while (off < n) {
        size_t k = std::min<size_t>(n - off, rng() % (max_piece + 1));
        g.fill(out.data() + off, k);
        off += k;
    }
    EXPECT_EQ(g.offset(), n);
    return out;
}

} // namespace

TEST(Prbs, MatchesTheDocumentedDefinition) {
    for (uint64_t seed : {0ull, 1ull, 42ull, 0xffffffffffffffffull}) {
        std::vector<uint8_t> got(1000);
        PrbsGenerator g(seed);
        g.fill(got.data(), got.size());
        EXPECT_EQ(got, reference(seed, 1000)) << "seed " << seed;
    }
}

TEST(Prbs, SameStreamForAnyChunking) {
    std::mt19937 rng(123);
    const size_t n = 1u << 20;
    auto whole = reference(7, n);
    for (size_t max_piece : {1u, 3u, 8u, 13u, 4096u, 100000u}) {
        EXPECT_TRUE(generate_chunked(7, n, rng, max_piece) == whole) << "pieces up to " << max_piece;
    }
}

TEST(Prbs, SeedsDiffer) {
    EXPECT_NE(reference(1, 64), reference(2, 64));
    std::vector<uint8_t> a(64), b(64);
    PrbsGenerator(1).fill(a.data(), 64);
    PrbsGenerator(2).fill(b.data(), 64);
    EXPECT_NE(a, b);
}

TEST(Prbs, VerifierAcceptsAnyChunking) {
    auto data = reference(99, 300'001);
    std::mt19937 rng(5);
    PrbsVerifier v(99);
    size_t off = 0;
    while (off < data.size()) {
        size_t k = std::min<size_t>(data.size() - off, rng() % 20000);
        ASSERT_TRUE(v.check(data.data() + off, k));
        off += k;
    }
    EXPECT_TRUE(v.ok());
    EXPECT_EQ(v.checked(), data.size());
}

TEST(Prbs, VerifierFindsAFlippedByteAtItsOffset) {
    const size_t n = 200'000;
    for (size_t bad : {size_t(0), size_t(7), size_t(8), size_t(4095), size_t(4096), size_t(123'457), n - 1}) {
        auto data = reference(3, n);
        const uint8_t orig = data[bad];
        data[bad] ^= 0x10;
        PrbsVerifier v(3);
        // Cut the input so the bad byte lands inside a call, not at its start.
        size_t cut = bad / 2 + 1;
        bool ok = v.check(data.data(), std::min(cut, n)) && v.check(data.data() + cut, n - cut);
        EXPECT_FALSE(ok);
        EXPECT_FALSE(v.ok());
        EXPECT_EQ(v.mismatch_offset(), bad);
        EXPECT_EQ(v.expected(), orig);
        EXPECT_EQ(v.actual(), orig ^ 0x10);
        EXPECT_FALSE(v.check(data.data(), 1)); // stays failed
    }
}

TEST(Prbs, WrongSeedFailsAtOnce) {
    auto data = reference(1, 64);
    PrbsVerifier v(2);
    EXPECT_FALSE(v.check(data.data(), data.size()));
    EXPECT_LT(v.mismatch_offset(), 8u);
}

// tx side generates, rx side verifies: the reader's PRBS source through the
// glue into the writer's PRBS sink.
TEST(Prbs, ReaderSourceToWriterVerifier) {
    ReaderConfig rc;
    rc.source = ReaderSource::PRBS;
    rc.prbs_seed = 77;
    rc.prbs_bytes = (10u << 20) + 3;
    rc.chunk_bytes = 100'000;
    rc.chunks = 4;
    WriterConfig wc;
    wc.sink = WriterSink::PRBS_VERIFY;
    wc.prbs_seed = 77;
    PipeReader r(rc);
    PipeWriter w(wc);
    r.start();
    w.start();
    EXPECT_TRUE(glue(r, w));
    EXPECT_EQ(r.state(), ReaderState::DONE) << r.message();
    EXPECT_EQ(w.state(), WriterState::DONE) << w.message();
    EXPECT_EQ(w.stats().bytes.load(), rc.prbs_bytes);
}

TEST(Prbs, WriterVerifierReportsTheOffset) {
    ReaderConfig rc;
    rc.source = ReaderSource::PRBS;
    rc.prbs_seed = 5;
    rc.prbs_bytes = 1u << 20;
    rc.chunk_bytes = 65536;
    rc.chunks = 4;
    WriterConfig wc;
    wc.sink = WriterSink::PRBS_VERIFY;
    wc.prbs_seed = 5;
    PipeReader r(rc);
    PipeWriter w(wc);
    r.start();
    w.start();
    // Corrupt stream byte 3*65536 + 1000 (in the fourth chunk).
    EXPECT_TRUE(glue(r, w, 60'000, [](Chunk *c) {
        if (c->offset == 3 * 65536) c->data[1000] ^= 1;
    }));
    EXPECT_EQ(w.state(), WriterState::FAILED);
    EXPECT_NE(std::string(w.message()).find("offset 197608"), std::string::npos) << w.message();
    EXPECT_EQ(w.stats().bytes.load(), 3u * 65536);
}
