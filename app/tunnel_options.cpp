// terminate / initiate: which combinations of the words make sense, and
// what a tunnel implies (set-up code, no EAL; transport_mode.h).
#include <string>

#include "transport_mode.h"

namespace millipede::app {

std::string check_tunnel_words(TransportOptions &o, bool stall_given) {
    const bool term = o.terminate_port != 0, init = !o.initiate_host.empty();
    if (!term && !init) return {};
    const std::string word = term ? "terminate" : "initiate";
    if (term && init)
        return "terminate and initiate in one process: give terminate PORT to the end where the connections "
               "arrive and initiate HOST PORT to the other end";
    if (o.prbs) return word + " with prbs: the tunnel carries its connections' bytes, not a test stream";
    if (term && !o.tx)
        return "terminate on rx alone: terminate feeds a sender (tx's input from one connection accepted on PORT, "
               "or with rx and tx together the tunnel's end where connections arrive); on rx, initiate HOST PORT "
               "sends the output to a connection";
    if (init && !o.listen_port)
        return "initiate on tx alone: initiate takes a receiver's output (rx's output to one connection to HOST "
               "PORT, or with rx and tx together the tunnel's end that opens connections); on tx, terminate PORT "
               "takes the input from a connection";
    // Stock viamillipede's form: one TCP connection instead of stdin (tx)
    // or stdout (rx); with --compat in full duplex, instead of both.
    if (!o.duplex || o.compat) return {};
    if (o.leglimit) return word + " with leglimit: a tunnel has no length to cut; leave leglimit out";
    // Interactive traffic: a keystroke leaves at once, not after a full
    // chunk. An idle tunnel makes no progress and must not be given up on;
    // a dead far end is still found by the legs' keep-alives and
    // --connect-timeout.
    o.charmode = true;
    if (!stall_given) o.stall_timeout_us = 0;
    return {};
}

} // namespace millipede::app
