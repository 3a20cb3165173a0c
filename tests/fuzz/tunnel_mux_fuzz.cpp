// libFuzzer: the tunnel's record parser (lib/tunnel mux.h) fed the input in
// fragments of the first byte's size, with a small parser capacity so that
// feed() refusals and compaction are exercised. Checks: a returned record
// lies inside what was fed and within the limits; a failed parser stays
// failed; every malformed count is 0 or 1.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "millipede/tunnel/mux.h"

using namespace millipede::tunnel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const size_t step = data[0] ? data[0] : 1;
    data++;
    size--;
    MuxParser p(kMaxRecord + (step & 7) * 1000);
    size_t used = 0;
    uint64_t records = 0;
    while (used < size) {
        const size_t k = p.feed(data + used, size - used < step ? size - used : step);
        used += k;
        Record r;
        Next n;
        while ((n = p.next(r)) == Next::RECORD) {
            if (r.length > kMaxPayload) __builtin_trap();
            if ((r.type == RecordType::HELLO || r.type == RecordType::BYE) != (r.stream == 0)) __builtin_trap();
            if (r.length && !r.payload) __builtin_trap();
            records++;
            p.pop();
        }
        if (n == Next::FAILED) {
            if (!p.failed() || p.next(r) != Next::FAILED) __builtin_trap();
            uint64_t total = 0;
            for (size_t m = 0; m < size_t(Malformed::COUNT); m++) total += p.malformed(Malformed(m));
            if (total != 1) __builtin_trap();
            break;
        }
        if (k == 0 && p.free_space() == 0) __builtin_trap(); // a full parser always holds a whole record
    }
    (void)records;
    return 0;
}
