// PipeReader and PipeWriter on real pipes and files: exact bytes, back-pressure,
// EPIPE, read errors, partial writes, EINTR, bounded stop.
//
// No test sleeps to let a thread get somewhere: they wait for a condition
// (a counter, the pipe's fill level, the thread asleep in the kernel) with a
// deadline. Stop latency is asserted against 5 s with wait slices of 30 s,
// so a missed wake-up fails clearly and a loaded machine does not.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "helpers.h"
#include "millipede/pipeio/pipe_fd.h"

using namespace millipede::pipeio;
using namespace pio_test;

namespace {

constexpr uint32_t kChunk = 64 * 1024;

ReaderConfig reader_cfg(int fd, uint32_t chunk = kChunk, uint32_t chunks = 8) {
    ReaderConfig c;
    c.fd = fd;
    c.chunk_bytes = chunk;
    c.chunks = chunks;
    return c;
}

WriterConfig writer_cfg(int fd, uint32_t depth = 16) {
    WriterConfig c;
    c.fd = fd;
    c.queue_depth = depth;
    return c;
}

// stdin pipe -> reader -> glue -> writer -> stdout pipe, compared byte for byte.
void roundtrip(size_t size, uint32_t chunk, uint32_t chunks, size_t feed_piece) {
    SCOPED_TRACE("size " + std::to_string(size) + " chunk " + std::to_string(chunk));
    auto data = random_bytes(size, static_cast<uint32_t>(size) ^ chunk);
    Pipe in, out;
    std::vector<uint8_t> got;
    PipeReader r(reader_cfg(in.rd, chunk, chunks));
    PipeWriter w(writer_cfg(out.wr));
    r.start();
    w.start();
    std::thread f = feed(in.wr, data, feed_piece);
    in.wr = -1; // closed by feed()
    std::thread d = drain(out.rd, got);
    EXPECT_TRUE(glue(r, w));
    f.join();
    EXPECT_EQ(r.state(), ReaderState::DONE) << r.message();
    EXPECT_EQ(w.state(), WriterState::DONE) << w.message();
    w.stop();
    r.stop();
    out.close_wr();
    d.join();
    EXPECT_EQ(r.stats().bytes.load(), size);
    EXPECT_EQ(w.stats().bytes.load(), size);
    ASSERT_EQ(got.size(), data.size());
    EXPECT_TRUE(got == data);
}

} // namespace

TEST(PipeIo, RoundTripEdgeSizes) {
    for (size_t size : {size_t(0), size_t(1), size_t(kChunk - 1), size_t(kChunk), size_t(kChunk + 1)})
        roundtrip(size, kChunk, 4, 100'000);
}

TEST(PipeIo, RoundTripManyMegabytes) {
    roundtrip(24u << 20, kChunk, 8, 1 << 20);     // many chunks
    roundtrip(8u << 20, 1u << 20, 4, 7919);      // odd feed pieces, 1 MiB chunks
    roundtrip(3u << 20, 4093, 3, 65536);         // chunk not a multiple of anything
}

TEST(PipeIo, FilesInAndOut) {
    char in_path[] = "/tmp/pipeio_in_XXXXXX";
    char out_path[] = "/tmp/pipeio_out_XXXXXX";
    int in_fd = mkstemp(in_path);
    int out_fd = mkstemp(out_path);
    ASSERT_GE(in_fd, 0);
    ASSERT_GE(out_fd, 0);
    auto data = random_bytes((5u << 20) + 12345, 7);
    ASSERT_EQ(write(in_fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(lseek(in_fd, 0, SEEK_SET), 0);
    {
        PipeReader r(reader_cfg(in_fd, kChunk, 4));
        PipeWriter w(writer_cfg(out_fd));
        EXPECT_EQ(r.pipe_size(), -1);
        EXPECT_EQ(w.pipe_size(), -1);
        r.start();
        w.start();
        EXPECT_TRUE(glue(r, w));
        EXPECT_EQ(w.state(), WriterState::DONE) << w.message();
    }
    std::vector<uint8_t> got(data.size() + 1);
    ASSERT_EQ(pread(out_fd, got.data(), got.size(), 0), static_cast<ssize_t>(data.size()));
    got.resize(data.size());
    EXPECT_TRUE(got == data);
    close(in_fd);
    close(out_fd);
    unlink(in_path);
    unlink(out_path);
}

TEST(PipeIo, ReaderEnlargesPipes) {
    Pipe p;
    const long max = pipe_max_size();
    ASSERT_GT(max, 0);
    PipeReader r(reader_cfg(p.rd));
    EXPECT_EQ(r.pipe_size(), max);
    EXPECT_EQ(fcntl(p.wr, F_GETPIPE_SZ), max);
    Pipe q;
    ReaderConfig leave = reader_cfg(q.rd);
    leave.pipe_size = -1;
    PipeReader r2(leave);
    EXPECT_EQ(r2.pipe_size(), 65536); // Linux default, untouched
}

// The reader stops reading when every buffer is with the consumer: the pipe
// stays full and the upstream writer gets EAGAIN.
TEST(PipeIo, BackPressureWhenPoolExhausted) {
    Pipe p;
    ReaderConfig rc = reader_cfg(p.rd, kChunk, 4);
    rc.pipe_size = -1;          // keep 64 KiB so the fill state is easy to reason about
    rc.flush_idle_us = 5'000'000; // chunks fill completely
    PipeReader r(rc);
    r.start();
    ASSERT_EQ(fcntl(p.wr, F_SETFL, O_NONBLOCK), 0);
    std::vector<uint8_t> buf(kChunk, 0xab);
    uint64_t pushed = 0;
    auto pool_exhausted = [&] { return r.stats().pool_waits.load() > 0 && r.stats().chunks.load() == 4; };
    auto queued_bytes = [&] {
        int n = 0;
        return ioctl(p.rd, FIONREAD, &n) == 0 ? n : -1;
    };
    const auto t0 = Clock::now();
    while (ms_since(t0) < 20'000) {
        ssize_t w = write(p.wr, buf.data(), buf.size());
        if (w > 0) {
            pushed += static_cast<uint64_t>(w);
            continue;
        }
        ASSERT_EQ(errno, EAGAIN);
        if (pool_exhausted()) break;
        // The pipe is full: wait until the reader drains some of it, or has
        // taken its last free buffer.
        ASSERT_TRUE(wait_until([&] { return queued_bytes() < 65536 || pool_exhausted(); }));
    }
    ASSERT_EQ(r.stats().chunks.load(), 4u);
    EXPECT_EQ(r.stats().bytes.load(), 4u * kChunk);
    int queued = 0;
    ASSERT_EQ(ioctl(p.rd, FIONREAD, &queued), 0);
    EXPECT_EQ(static_cast<uint64_t>(queued) + 4u * kChunk, pushed);
    EXPECT_GT(queued, 0);
    // Nothing more is read while the consumer holds the pool: the reader
    // wakes from its 50 ms wait slices and goes back to sleep, twice over,
    // and the pipe still holds every byte.
    ASSERT_TRUE(wait_others_asleep(2));
    int later = 0;
    ASSERT_EQ(ioctl(p.rd, FIONREAD, &later), 0);
    EXPECT_EQ(later, queued);
    EXPECT_EQ(write(p.wr, buf.data(), buf.size()), -1); // the upstream is blocked
    EXPECT_EQ(errno, EAGAIN);
    // Returning one buffer lets exactly one more chunk in.
    Chunk *c = r.poll();
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->offset, 0u);
    r.release(c);
    EXPECT_TRUE(wait_until([&] { return r.stats().chunks.load() >= 5; }));
    EXPECT_TRUE(wait_others_asleep()); // and it waits for a buffer again
    EXPECT_EQ(r.stats().chunks.load(), 5u);
    ASSERT_EQ(ioctl(p.rd, FIONREAD, &later), 0);
    EXPECT_EQ(later, queued - static_cast<int>(kChunk));
    const auto t2 = Clock::now();
    r.stop();
    EXPECT_LT(ms_since(t2), 5000);
}

TEST(PipeIo, PartialChunkHandedOverWhenIdle) {
    Pipe p;
    ReaderConfig rc = reader_cfg(p.rd);
    rc.flush_idle_us = 5000;
    PipeReader r(rc);
    r.start();
    ASSERT_EQ(write(p.wr, "hello", 5), 5);
    Chunk *c = r.wait_chunk(2'000'000);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->len, 5u);
    EXPECT_EQ(std::memcmp(c->data, "hello", 5), 0);
    EXPECT_EQ(c->flags, 0u);
    EXPECT_GE(r.stats().partial_flushes.load(), 1u);
    r.release(c);
    p.close_wr();
    c = r.wait_chunk(2'000'000);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->len, 0u);
    EXPECT_EQ(c->offset, 5u);
    EXPECT_EQ(c->flags, CHUNK_END);
    EXPECT_EQ(r.state(), ReaderState::DONE);
}

TEST(PipeIo, ReadErrorReportsErrno) {
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dir, 0);
    PipeReader r(reader_cfg(dir));
    r.start();
    Chunk *c = r.wait_chunk(5'000'000);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->flags, CHUNK_END | CHUNK_ERROR);
    EXPECT_EQ(c->error, EISDIR);
    EXPECT_EQ(c->len, 0u);
    EXPECT_EQ(r.state(), ReaderState::FAILED);
    EXPECT_NE(std::string(r.message()).find("Is a directory"), std::string::npos) << r.message();
    EXPECT_NE(std::string(r.message()).find("read from fd"), std::string::npos) << r.message();
    r.release(c);
    EXPECT_EQ(r.wait_chunk(20'000), nullptr); // nothing after the error
    close(dir);
}

TEST(PipeIo, EpipeIsAnErrorNotASignal) {
    Pipe p;
    p.close_rd();
    PipeWriter w(writer_cfg(p.wr));
    w.start();
    std::vector<uint8_t> data(1000, 1);
    ASSERT_TRUE(w.submit(data.data(), 1000, 11));
    ASSERT_TRUE(w.submit(data.data(), 1000, 12));
    Completion c;
    ASSERT_TRUE(w.wait_done(c, 5'000'000));
    EXPECT_EQ(c.cookie, 11u);
    EXPECT_FALSE(c.written);
    ASSERT_TRUE(w.wait_done(c, 5'000'000));
    EXPECT_EQ(c.cookie, 12u);
    EXPECT_FALSE(c.written);
    EXPECT_EQ(w.state(), WriterState::FAILED);
    EXPECT_EQ(w.error(), EPIPE);
    EXPECT_NE(std::string(w.message()).find("stdout closed by the reader"), std::string::npos) << w.message();
    // Later spans come back unwritten too, and no SIGPIPE is left pending.
    ASSERT_TRUE(w.submit(data.data(), 10, 13));
    ASSERT_TRUE(w.wait_done(c, 5'000'000));
    EXPECT_EQ(c.cookie, 13u);
    EXPECT_FALSE(c.written);
    sigset_t pending;
    sigpending(&pending);
    EXPECT_FALSE(sigismember(&pending, SIGPIPE));
    EXPECT_EQ(w.outstanding(), 0u);
}

TEST(PipeIo, PartialWritesResume) {
    Pipe p;
    ASSERT_GT(fcntl(p.wr, F_SETPIPE_SZ, 4096), 0);
    WriterConfig wc = writer_cfg(p.wr);
    wc.pipe_size = -1; // keep the tiny pipe
    PipeWriter w(wc);
    w.start();
    auto a = random_bytes(300'000, 1), b = random_bytes(5, 2), cc = random_bytes(777'777, 3);
    std::vector<uint8_t> got;
    std::thread d = drain(p.rd, got, 1000); // slow, small reads
    ASSERT_TRUE(w.submit(a.data(), static_cast<uint32_t>(a.size()), 1));
    ASSERT_TRUE(w.submit(b.data(), static_cast<uint32_t>(b.size()), 2));
    ASSERT_TRUE(w.submit(nullptr, 0, 3));
    ASSERT_TRUE(w.submit(cc.data(), static_cast<uint32_t>(cc.size()), 4));
    ASSERT_TRUE(w.submit_end(5));
    for (uint64_t want = 1; want <= 5; want++) {
        Completion c;
        ASSERT_TRUE(w.wait_done(c, 30'000'000));
        EXPECT_EQ(c.cookie, want);
        EXPECT_TRUE(c.written);
        EXPECT_EQ(c.end, want == 5);
    }
    EXPECT_EQ(w.state(), WriterState::DONE);
    EXPECT_GT(w.stats().partial_writes.load(), 0u);
    EXPECT_GT(w.stats().full_waits.load(), 0u);
    w.stop();
    p.close_wr();
    d.join();
    std::vector<uint8_t> want = a;
    want.insert(want.end(), b.begin(), b.end());
    want.insert(want.end(), cc.begin(), cc.end());
    EXPECT_TRUE(got == want);
}

TEST(PipeIo, BoundedQueueAndSpansAfterEnd) {
    Pipe p;
    PipeWriter w(writer_cfg(p.wr, 2));
    uint8_t x = 7;
    ASSERT_TRUE(w.submit(&x, 1, 1));
    ASSERT_TRUE(w.submit_end(2));
    EXPECT_FALSE(w.submit(&x, 1, 3)); // depth 2 outstanding (not started yet)
    EXPECT_EQ(w.outstanding(), 2u);
    w.start();
    Completion c;
    ASSERT_TRUE(w.wait_done(c, 5'000'000));
    EXPECT_TRUE(c.written);
    ASSERT_TRUE(w.wait_done(c, 5'000'000));
    EXPECT_TRUE(c.end);
    EXPECT_EQ(w.state(), WriterState::DONE);
    ASSERT_TRUE(w.submit(&x, 1, 3));
    ASSERT_TRUE(w.wait_done(c, 5'000'000));
    EXPECT_EQ(c.cookie, 3u);
    EXPECT_FALSE(c.written);
    uint8_t back = 0;
    EXPECT_EQ(read(p.rd, &back, 1), 1);
    EXPECT_EQ(back, 7);
}

namespace {
void on_usr2(int) {}
} // namespace

// Signals without SA_RESTART interrupt the reader's and writer's system calls
// (EINTR, short reads/writes); the bytes must still be exact.
TEST(PipeIo, SignalStormKeepsBytesExact) {
    struct sigaction sa {};
    sa.sa_handler = on_usr2;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    struct sigaction old {};
    ASSERT_EQ(sigaction(SIGUSR2, &sa, &old), 0);
    std::atomic<bool> storm{true};
    std::thread t([&] {
        while (storm.load()) {
            kill(getpid(), SIGUSR2);
            // Pacing, not synchronisation: ~5,000 signals a second interrupt
            // every system call without starving the threads under test.
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    });
    roundtrip(16u << 20, kChunk, 4, 1 << 20);
    storm = false;
    t.join();
    sigaction(SIGUSR2, &old, nullptr);
}

TEST(PipeIo, StopIsBoundedWhileIdle) {
    Pipe in, out;
    ReaderConfig rc = reader_cfg(in.rd);
    rc.wait_slice_us = 30'000'000; // the wake-up, not the timeout, must end the waits
    WriterConfig wc = writer_cfg(out.wr);
    wc.wait_slice_us = 30'000'000;
    PipeReader r(rc);
    PipeWriter w(wc);
    r.start();
    w.start();
    // Both threads are in their 30 s waits (reader: poll on the empty pipe,
    // writer: its queue's futex) before stop() has to interrupt them.
    ASSERT_TRUE(wait_others_asleep());
    auto t0 = Clock::now();
    r.stop();
    w.stop();
    EXPECT_LT(ms_since(t0), 5000);
    EXPECT_EQ(r.state(), ReaderState::STOPPED);
    EXPECT_EQ(w.state(), WriterState::STOPPED);
}

TEST(PipeIo, StopIsBoundedWhenDownstreamStalls) {
    Pipe out; // nobody reads out.rd
    WriterConfig wc = writer_cfg(out.wr);
    wc.wait_slice_us = 30'000'000;
    PipeWriter w(wc);
    w.start();
    std::vector<uint8_t> big(8u << 20, 0x5a); // larger than any pipe
    ASSERT_TRUE(w.submit(big.data(), static_cast<uint32_t>(big.size()), 1));
    EXPECT_TRUE(wait_until([&] { return w.stats().full_waits.load() > 0; }));
    ASSERT_TRUE(wait_others_asleep()); // in its 30 s wait for POLLOUT
    const auto t1 = Clock::now();
    w.stop();
    EXPECT_LT(ms_since(t1), 5000);
    Completion c;
    ASSERT_TRUE(w.poll_done(c)); // abandoned and handed back; the writer no longer touches `big`
    EXPECT_EQ(c.cookie, 1u);
    EXPECT_FALSE(c.written);
    EXPECT_EQ(w.state(), WriterState::STOPPED);
}

TEST(PipeIo, StopIsBoundedWhenPoolExhausted) {
    Pipe in;
    ReaderConfig rc = reader_cfg(in.rd, 4096, 2);
    rc.wait_slice_us = 30'000'000;
    rc.flush_idle_us = 0;
    PipeReader r(rc);
    r.start();
    std::vector<uint8_t> buf(3 * 4096, 1);
    ASSERT_EQ(write(in.wr, buf.data(), buf.size()), static_cast<ssize_t>(buf.size()));
    ASSERT_TRUE(wait_until([&] { return r.stats().pool_waits.load() > 0; }));
    ASSERT_TRUE(wait_others_asleep()); // in its 30 s wait for a free buffer
    const auto t1 = Clock::now();
    r.stop();
    EXPECT_LT(ms_since(t1), 5000);
    EXPECT_EQ(r.state(), ReaderState::STOPPED);
}

TEST(PipeIo, ConfigValidation) {
    ReaderConfig rc;
    rc.chunk_bytes = 0;
    EXPECT_THROW(PipeReader{rc}, std::invalid_argument);
    rc = ReaderConfig{};
    rc.chunks = 0;
    EXPECT_THROW(PipeReader{rc}, std::invalid_argument);
    WriterConfig wc;
    wc.queue_depth = 0;
    EXPECT_THROW(PipeWriter{wc}, std::invalid_argument);
    wc = WriterConfig{};
    wc.max_iov = 5000;
    EXPECT_THROW(PipeWriter{wc}, std::invalid_argument);
}

TEST(PipeIo, CallerSuppliedMemory) {
    std::vector<uint8_t> mem(4 * 1000);
    ReaderConfig rc;
    rc.source = ReaderSource::PRBS;
    rc.prbs_seed = 1;
    rc.prbs_bytes = 2500;
    rc.chunk_bytes = 1000;
    rc.chunks = 4;
    rc.memory = mem.data();
    PipeReader r(rc);
    r.start();
    uint32_t lens[3];
    for (int i = 0; i < 3; i++) {
        Chunk *c = r.wait_chunk(5'000'000);
        ASSERT_NE(c, nullptr);
        EXPECT_GE(c->data, mem.data());
        EXPECT_LT(c->data, mem.data() + mem.size());
        lens[i] = c->len;
        EXPECT_EQ(c->flags, i == 2 ? CHUNK_END : 0u);
        r.release(c);
    }
    EXPECT_EQ(lens[0] + lens[1] + lens[2], 2500u);
    EXPECT_EQ(lens[2], 500u);
}

// tail_room (key FILE's tag after each chunk): chunks keep their stride in
// the pool but never fill the last tail_room bytes, from a pipe or PRBS.
TEST(PipeIo, TailRoomIsNeverFilled) {
    EXPECT_THROW(PipeReader([] { ReaderConfig c; c.chunk_bytes = 16; c.tail_room = 16; return c; }()),
                 std::invalid_argument);
    for (const ReaderSource src : {ReaderSource::FD, ReaderSource::PRBS}) {
        std::vector<uint8_t> mem(4 * 1000, 0xEE);
        auto data = random_bytes(5000, 77);
        Pipe in;
        ReaderConfig rc = reader_cfg(in.rd, 1000, 4);
        rc.source = src;
        rc.prbs_seed = 3;
        rc.prbs_bytes = 5000;
        rc.tail_room = 16;
        rc.memory = mem.data();
        PipeReader r(rc);
        EXPECT_EQ(r.fill_bytes(), 984u);
        r.start();
        std::thread f;
        if (src == ReaderSource::FD) {
            f = feed(in.wr, data, 5000);
            in.wr = -1;
        }
        size_t total = 0;
        for (bool end = false; !end;) {
            Chunk *c = r.wait_chunk(5'000'000);
            ASSERT_NE(c, nullptr);
            EXPECT_LE(c->len, 984u);
            EXPECT_EQ(c->data, mem.data() + size_t(c->index) * 1000) << "the stride stays chunk_bytes";
            for (size_t i = 984; i < 1000; i++) ASSERT_EQ(c->data[i], 0xEE) << "tail byte " << i << " written";
            total += c->len;
            end = (c->flags & CHUNK_END) != 0;
            r.release(c);
        }
        EXPECT_EQ(total, 5000u);
        if (f.joinable()) f.join();
        r.stop();
    }
}

// The helper the stop tests rely on can tell a thread that is still working
// from one asleep in a wait (otherwise those tests could pass by accident).
TEST(PipeIoHelpers, WaitOthersAsleepTellsBusyFromWaiting) {
    std::atomic<bool> spin{true};
    std::thread busy([&] {
        while (spin.load()) {
        }
    });
    EXPECT_FALSE(wait_others_asleep(0, 300));
    spin = false;
    busy.join();
    Pipe p;
    std::thread blocked([&] {
        char c;
        (void)!read(p.rd, &c, 1); // blocks until the write below
    });
    EXPECT_TRUE(wait_others_asleep());
    ASSERT_EQ(write(p.wr, "x", 1), 1);
    blocked.join();
}

// on_piece sees every byte once, in stream order, in pieces of at most
// piece_bytes, before the chunk is handed over; Chunk::sums carry its
// results and start at 0 for every chunk (also a reused buffer).
TEST(PipeIo, PieceHookSeesEveryByteOnceInOrder) {
    char in_path[] = "/tmp/pipeio_piece_XXXXXX";
    int in_fd = mkstemp(in_path);
    ASSERT_GE(in_fd, 0);
    auto data = random_bytes((3u << 20) + 777, 9);
    ASSERT_EQ(write(in_fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(lseek(in_fd, 0, SEEK_SET), 0);
    struct Seen {
        uint64_t stream_pos = 0;   // bytes hooked so far
        uint32_t largest = 0;
        bool in_order = true;
        const std::vector<uint8_t> *data = nullptr;
    } seen;
    seen.data = &data;
    ReaderConfig rc = reader_cfg(in_fd, 1u << 20, 3);
    rc.piece_bytes = 100'000;
    rc.on_piece_ctx = &seen;
    rc.on_piece = [](void *ctx, Chunk &c, const uint8_t *p, size_t n) {
        auto &s = *static_cast<Seen *>(ctx);
        if (c.offset + c.len != s.stream_pos || std::memcmp(p, s.data->data() + s.stream_pos, n) != 0)
            s.in_order = false;
        s.stream_pos += n;
        s.largest = std::max<uint32_t>(s.largest, static_cast<uint32_t>(n));
        c.sums[0] += n;                           // bytes of this chunk
        c.sums[1] = s.stream_pos;                 // stream through this chunk
    };
    PipeReader r(rc);
    r.start();
    uint64_t total = 0;
    for (;;) {
        Chunk *c = r.wait_chunk(5'000'000);
        ASSERT_NE(c, nullptr) << r.message();
        EXPECT_EQ(c->sums[0], c->len) << "chunk at " << c->offset;
        EXPECT_EQ(c->sums[1], c->offset + c->len);
        total += c->len;
        const bool end = c->flags & CHUNK_END;
        r.release(c);
        if (end) break;
    }
    EXPECT_EQ(total, data.size());
    EXPECT_EQ(seen.stream_pos, data.size());
    EXPECT_TRUE(seen.in_order);
    EXPECT_LE(seen.largest, 100'000u);
    close(in_fd);
    unlink(in_path);
}
