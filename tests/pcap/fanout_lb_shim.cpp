// A negative control for tap_shards_test.py, loaded with LD_PRELOAD into
// dpdk-millipede: net_af_packet's PACKET_FANOUT_HASH group becomes
// PACKET_FANOUT_LB (round-robin over the sockets, flags kept), a spreading
// that is not by flow, let alone symmetric. The test must then see flows
// split over shards. Test-only; never installed.
#include <cstdint>
#include <cstring>

#include <dlfcn.h>
#include <linux/if_packet.h>
#include <sys/socket.h>

extern "C" int setsockopt(int fd, int level, int name, const void *value, socklen_t len) noexcept {
    static int (*real)(int, int, int, const void *, socklen_t);
    if (!real) real = reinterpret_cast<int (*)(int, int, int, const void *, socklen_t)>(dlsym(RTLD_NEXT, "setsockopt"));
    if (level == SOL_PACKET && name == PACKET_FANOUT && len == sizeof(std::uint32_t)) {
        std::uint32_t arg;
        std::memcpy(&arg, value, sizeof arg);
        const std::uint32_t flags = (arg >> 16) & 0xff00u; // PACKET_FANOUT_FLAG_*
        arg = (arg & 0xffffu) | ((flags | PACKET_FANOUT_LB) << 16);
        return real(fd, level, name, &arg, len);
    }
    return real(fd, level, name, value, len);
}
