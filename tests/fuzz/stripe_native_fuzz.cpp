// libFuzzer: the native stripe decoder in both directions, fed in arbitrary
// fragments, and a StripeReceiver / StripeSender fed the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "millipede/stripe/receiver.h"
#include "millipede/stripe/sender.h"
#include "millipede/stripe/wire.h"

using namespace millipede::stripe;

namespace {
struct NullIo : LegIo {
    size_t writable(uint32_t) override { return 1 << 16; }
    size_t write(uint32_t, const uint8_t *, size_t n) override { return n; }
};

void decode(Direction dir, const uint8_t *p, size_t n, uint8_t frag) {
    Decoder dec(Codec::NATIVE, dir, 4096);
    Decoded d;
    size_t used = 0;
    size_t step = frag ? frag : 1;
    while (used < n) {
        size_t avail = n - used < step ? n - used : step;
        size_t k = dec.feed(p + used, avail, d);
        if (k > avail) __builtin_trap();
        if (d.kind == EventKind::CHUNK_DATA && (d.data < p + used || d.data + d.data_len > p + used + k))
            __builtin_trap();
        used += k;
        if (d.kind == EventKind::ERROR || d.kind == EventKind::HELLO_VERSION) break;
        if (k == 0 && d.kind == EventKind::NEED_MORE) break;
    }
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t frag = data[0];
    data++;
    size--;
    decode(Direction::FROM_SENDER, data, size, frag);
    decode(Direction::FROM_RECEIVER, data, size, frag);

    // Receiver: a valid hello first, then the fuzz bytes as the stream.
    ReceiverConfig rc;
    rc.max_legs = 2;
    rc.window_chunks = 2;
    rc.max_chunk_bytes = 4096;
    StripeReceiver rx(rc);
    NullIo io;
    rx.leg_up(0, 0);
    Hello h;
    h.chunk_bytes = 4096;
    uint8_t hb[kHelloSize];
    encode_hello(hb, h);
    rx.leg_input(0, hb, sizeof hb, 0);
    size_t used = 0;
    for (int rounds = 0; used < size && rounds < 10000; rounds++) {
        size_t step = frag ? frag : 1;
        size_t avail = size - used < step ? size - used : step;
        used += rx.leg_input(0, data + used, avail, 0);
        auto o = rx.output();
        rx.output_consumed(o.size());
        rx.poll(0, io);
        if (rx.state() != SessionState::RUNNING || rx.leg_state(0) != ReceiverLegState::OPEN) break;
    }

    // Sender: the fuzz bytes as what a receiver answered.
    SenderConfig sc;
    sc.chunk_bytes = 64;
    sc.max_chunks_in_flight = 4;
    StripeSender tx(sc);
    tx.poll(0, io);
    tx.leg_up(0, 0);
    uint8_t in[200];
    std::memset(in, 7, sizeof in);
    tx.push_input(in, sizeof in, 0);
    tx.poll(0, io);
    tx.leg_input(0, data, size, 1);
    tx.poll(2, io);
    return 0;
}
