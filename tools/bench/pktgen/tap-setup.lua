-- Pktgen-DPDK set-up for the dpdk-millipede tap loop (docs/benchmarks.md,
-- "Pktgen on a 2x100G host"). Port 0 sends the client -> server direction,
-- port 1 the server -> client direction of the same UDP flows, so the tap,
-- which keys flows symmetrically, sees both directions of every flow.
--
-- Flows: Pktgen's range mode steps every field on every packet, so the
-- source address (N addresses) and source port (M ports) advance together
-- and the number of distinct flows is lcm(N, M): co-prime N and M give N x M
-- flows. tap_flows(n) picks them (1,000 -> 1000 x 1; 100,000 -> 316 x 317 =
-- 100,172; 1,000,000 -> 1000 x 1001 = 1,001,000).
--
-- Loaded by `pktgen ... -f tools/bench/pktgen/tap-setup.lua`; rfc2544.lua and
-- pktgen_rfc2544.py call tap_setup(size, flows) again per curve.
package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;tools/bench/pktgen/?.lua"
require "Pktgen"

-- RFC 2544's benchmarking range (198.18.0.0/15); the tap does not route.
TAP_CLIENT_NET = "198.18"
TAP_SERVER_IP = "198.19.0.1"
TAP_SERVER_PORT = 4789
TAP_CLIENT_PORT = 10000

function tap_flows(n)
    if n <= 1000 then return n, 1 end
    if n <= 100000 then return 316, 317 end
    return 1000, 1001
end

local function ip_of(i)  -- the i-th client address, i from 0
    return string.format("%s.%d.%d", TAP_CLIENT_NET, 1 + (i // 250), 1 + (i % 250))
end

function tap_setup(size, flows)
    local nip, nport = tap_flows(flows)
    pktgen.stop("all")
    pktgen.reset("all")
    pktgen.set("all", "burst", 64)
    pktgen.set_type("all", "ipv4")
    pktgen.set_proto("all", "udp")
    pktgen.set("all", "size", size)
    pktgen.range.ip_proto("all", "udp")
    pktgen.range.pkt_size("all", "start", size)
    pktgen.range.pkt_size("all", "inc", 0)
    pktgen.range.pkt_size("all", "min", size)
    pktgen.range.pkt_size("all", "max", size)
    pktgen.range.ttl("all", "start", 64)
    pktgen.range.ttl("all", "inc", 0)
    pktgen.range.ttl("all", "min", 64)
    pktgen.range.ttl("all", "max", 64)
    -- port 0: client -> server
    pktgen.range.src_ip("0", "start", ip_of(0))
    pktgen.range.src_ip("0", "inc", "0.0.0.1")
    pktgen.range.src_ip("0", "min", ip_of(0))
    pktgen.range.src_ip("0", "max", ip_of(nip - 1))
    pktgen.range.dst_ip("0", "start", TAP_SERVER_IP)
    pktgen.range.dst_ip("0", "inc", "0.0.0.0")
    pktgen.range.dst_ip("0", "min", TAP_SERVER_IP)
    pktgen.range.dst_ip("0", "max", TAP_SERVER_IP)
    pktgen.range.src_port("0", "start", TAP_CLIENT_PORT)
    pktgen.range.src_port("0", "inc", nport > 1 and 1 or 0)
    pktgen.range.src_port("0", "min", TAP_CLIENT_PORT)
    pktgen.range.src_port("0", "max", TAP_CLIENT_PORT + nport - 1)
    pktgen.range.dst_port("0", "start", TAP_SERVER_PORT)
    pktgen.range.dst_port("0", "inc", 0)
    pktgen.range.dst_port("0", "min", TAP_SERVER_PORT)
    pktgen.range.dst_port("0", "max", TAP_SERVER_PORT)
    -- port 1: the same flows, server -> client
    pktgen.range.dst_ip("1", "start", ip_of(0))
    pktgen.range.dst_ip("1", "inc", "0.0.0.1")
    pktgen.range.dst_ip("1", "min", ip_of(0))
    pktgen.range.dst_ip("1", "max", ip_of(nip - 1))
    pktgen.range.src_ip("1", "start", TAP_SERVER_IP)
    pktgen.range.src_ip("1", "inc", "0.0.0.0")
    pktgen.range.src_ip("1", "min", TAP_SERVER_IP)
    pktgen.range.src_ip("1", "max", TAP_SERVER_IP)
    pktgen.range.dst_port("1", "start", TAP_CLIENT_PORT)
    pktgen.range.dst_port("1", "inc", nport > 1 and 1 or 0)
    pktgen.range.dst_port("1", "min", TAP_CLIENT_PORT)
    pktgen.range.dst_port("1", "max", TAP_CLIENT_PORT + nport - 1)
    pktgen.range.src_port("1", "start", TAP_SERVER_PORT)
    pktgen.range.src_port("1", "inc", 0)
    pktgen.range.src_port("1", "min", TAP_SERVER_PORT)
    pktgen.range.src_port("1", "max", TAP_SERVER_PORT)
    pktgen.set_range("all", "on")
    return nip * nport
end

-- One trial: `count` packets per port at `pct` % of the link, then the
-- ports' counters. Sending a fixed count (not a time) makes the offered
-- number exact; pktgen_rfc2544.py computes it from rate and duration.
function tap_trial(pct, count, duration_ms)
    pktgen.stop("all")
    pktgen.clr()
    pktgen.set("all", "rate", pct)
    pktgen.set("all", "count", count)
    pktgen.start("all")
    pktgen.delay(duration_ms + 250)   -- start/stop take a moment (Pktgen's own rfc2544.lua does the same)
    pktgen.stop("all")
    pktgen.delay(500)                 -- let the last packets leave and the counters settle
    local s0 = pktgen.portStats("0", "port")[0]
    local s1 = pktgen.portStats("1", "port")[1]
    return s0.opackets, s1.opackets, s0.ipackets, s1.ipackets
end

-- A line pktgen_rfc2544.py parses (over the -G socket, print() answers).
function tap_trial_line(pct, count, duration_ms)
    local o0, o1, i0, i1 = tap_trial(pct, count, duration_ms)
    print(string.format("TAPTRIAL opackets=%d,%d ipackets=%d,%d", o0, o1, i0, i1))
end

if not TAP_SETUP_NO_DEFAULT then
    tap_setup(64, 1000)
end
