// libFuzzer: the viamillipede-format decoder in both directions, fed in
// arbitrary fragments, and a compat-mode StripeReceiver fed the same bytes.
#include <cstddef>
#include <cstdint>

#include "millipede/stripe/receiver.h"
#include "millipede/stripe/wire.h"

using namespace millipede::stripe;

namespace {
struct NullIo : LegIo {
    size_t writable(uint32_t) override { return 1 << 16; }
    size_t write(uint32_t, const uint8_t *, size_t n) override { return n; }
};

void decode(Direction dir, const uint8_t *p, size_t n, uint8_t frag) {
    Decoder dec(Codec::VIAMILLIPEDE, dir);
    Decoded d;
    size_t used = 0;
    size_t step = frag ? frag : 1;
    while (used < n) {
        size_t avail = n - used < step ? n - used : step;
        size_t k = dec.feed(p + used, avail, d);
        if (k > avail) __builtin_trap();
        used += k;
        if (d.kind == EventKind::ERROR) break;
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

    ReceiverConfig rc;
    rc.codec = Codec::VIAMILLIPEDE;
    rc.max_legs = 1;
    rc.window_chunks = 2;
    rc.max_chunk_bytes = 4096;
    StripeReceiver rx(rc);
    NullIo io;
    rx.leg_up(0, 0);
    const uint8_t phrase[4] = {'y', 'o', 'e', 's'};
    rx.leg_input(0, phrase, 4, 0);
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
    return 0;
}
