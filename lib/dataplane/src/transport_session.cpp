// The session lcore: the stripe core (TxCore / RxCore) between the pipe
// threads and the workers, when the transfer ends and how, and the figures
// the user sees.
#include <cstring>

#include <rte_ethdev.h>

#include "millipede/port/port.h"
#include "transport_internal.h"

namespace millipede::dataplane {

bool RingCommands::send(uint32_t host, const session::LegCommand &c) {
    if (host >= plane->workers.size()) return false;
    session::LegCommand copy = c; // (the ring API takes a non-const pointer)
    return rte_ring_sp_enqueue_elem(plane->workers[host]->cmds, &copy, sizeof copy) == 0;
}

uint32_t RingCommands::hosts() const { return static_cast<uint32_t>(plane->workers.size()); }

// A new leg goes to the least-loaded worker: fewest connections, then
// least busy (the balancer's busy policy over the workers' own figures).
// The session's own count of legs per worker comes first: the legs of one
// start are placed before any worker has run its CONNECT.
uint32_t RingCommands::pick_host(const tcp::Endpoints &ep) {
    const unsigned nw = static_cast<unsigned>(plane->workers.size());
    const session::TxCore *core = plane->session.tx.get();
    flow::WorkerLoad loads[64];
    for (unsigned w = 0; w < nw && w < 64; w++) {
        const uint32_t published = plane->workers[w]->pub.connections.load(std::memory_order_relaxed);
        loads[w] = flow::WorkerLoad{32 * std::max(published, core ? core->legs_on_host(w) : 0u), 0.0f};
    }
    balancer->refresh({loads, std::min(nw, 64u)});
    const uint32_t h = ep.local_port * 2654435761u ^ ep.remote_port;
    const unsigned w = balancer->pick_new(h);
    balancer->note_dispatch(w);
    return w;
}

namespace {

// stdin chunks into the stripe sender, by reference: a chunk read into
// hugepage memory becomes the payload of the segments that carry it.
unsigned pipe_tx(Impl &p, uint64_t now) {
    Session &s = p.session;
    unsigned work = 0;
    uint32_t back[64];
    // Chunks whose last reference dropped (acknowledged, their segments
    // sent and freed) go back to the reader.
    const unsigned nb = s.chunks->drain_returned(back, 64);
    for (unsigned i = 0; i < nb; i++) {
        pipeio::Chunk *c = s.by_index[back[i]];
        s.by_index[back[i]] = nullptr;
        if (c) s.reader->release(c);
    }
    work += nb;
    stripe::StripeSender &st = s.tx->stripe_mut();
    for (int rounds = 0; rounds < 8 && !s.input_done; rounds++) {
        if (!s.pending) {
            s.pending = s.reader->poll();
            if (!s.pending) break;
            if (s.pending->flags & pipeio::CHUNK_ERROR) {
                p.fail = std::string("reading stdin: ") + s.reader->message();
                return work;
            }
        }
        pipeio::Chunk *c = s.pending;
        uint32_t len = c->len;
        if (s.limit_bytes != UINT64_MAX && s.pushed + len > s.limit_bytes)
            len = static_cast<uint32_t>(s.limit_bytes - s.pushed);
        if (len) {
            if (!st.chunk_room()) break; // every chunk is in flight: back-pressure to the pipe
            if (!s.rate.admit(len, now)) break; // --rate: the chunk waits in `pending`
            const tcp::BufRef ref = s.chunks->take(c->index);
            s.by_index[c->index] = c;
            // The reader's sums cover the whole chunk; a chunk cut by
            // leglimit is summed by the sender itself.
            const stripe::StripeSender::ChunkSums sums{static_cast<uint32_t>(c->sums[0]), c->sums[1]};
            if (!st.push_chunk(c->data, len, ref, now, s.reader_sums && len == c->len ? &sums : nullptr)) {
                chunk_release(ref); // (cannot happen after chunk_room(); comes back through the ring)
                break;
            }
            s.pushed += len;
        }
        const bool end = (c->flags & pipeio::CHUNK_END) != 0 || s.pushed >= s.limit_bytes;
        if (!len) s.reader->release(c); // (an empty last chunk: nothing refers to it)
        work++;
        s.pending = nullptr;
        if (end) {
            s.tx->finish_input(now);
            s.input_done = true;
        }
    }
    return work;
}

// Verified output to the writer.
unsigned pipe_rx(Impl &p) {
    Session &s = p.session;
    unsigned work = 0;
    pipeio::Completion c;
    while (s.writer->poll_done(c)) {
        work++;
        if (c.end) {
            s.writer_done = c.written;
            if (!c.written) p.fail = std::string("writing stdout: ") + s.writer->message();
            continue;
        }
        if (!c.written) {
            p.fail = std::string("writing stdout: ") + s.writer->message();
            return work;
        }
        s.rx->output_consumed(c.len);
        s.inflight -= c.len;
    }
    auto out = s.rx->output();
    if (out.size() > s.inflight) {
        const size_t n = std::min<size_t>(out.size() - s.inflight, 1u << 30);
        if (s.writer->submit(out.data() + s.inflight, static_cast<uint32_t>(n), 0)) {
            s.inflight += n;
            work++;
        }
    }
    if (!s.end_submitted && s.rx->state() == session::State::DONE && s.inflight == 0 && s.rx->output().empty()) {
        if (s.writer->submit_end()) {
            s.end_submitted = true;
            work++;
        }
    }
    return work;
}

} // namespace

unsigned Impl::session_poll(uint64_t now) {
    Session &s = session;
    unsigned work = 0;
    session::LegReport reps[64];
    for (auto &w : workers) {
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst_elem(w->reports, reps, sizeof(session::LegReport), 64, nullptr)) > 0) {
            for (unsigned i = 0; i < n; i++) {
                if (s.tx)
                    s.tx->on_report(reps[i], now);
                else
                    s.rx->on_report(reps[i], now);
            }
            work += n;
        }
    }
    work += s.tx ? pipe_tx(*this, now) : pipe_rx(*this);
    if (o.chaos && s.tx && s.tx->state() == session::State::RUNNING) {
        const auto &st = s.tx->stripe().stats();
        // New chunks only: counting re-sends too, chaos 2 could break every
        // leg before its re-sent chunks land, and never finish.
        const uint64_t sent = st.chunks_sent;
        if (!s.next_chaos) s.next_chaos = o.chaos;
        if (sent >= s.next_chaos) {
            // A leg that cannot break now (already down, still connecting)
            // is tried again on the next poll: every N chunks, one break.
            const int32_t leg = s.tx->last_data_leg();
            if (leg >= 0 && s.tx->break_leg(static_cast<uint32_t>(leg))) {
                s.next_chaos += o.chaos; // on schedule, however many chunks one poll sent
                s.chaos_breaks++;
                // A stock viamillipede receiver cannot survive a reset leg:
                // in compat mode the leg closes with FIN (TxCore::break_leg).
                if (o.verbose)
                    std::fprintf(stderr, o.compat ? "dpdk-millipede tx: chaos: closing leg %d (FIN)\n"
                                                  : "dpdk-millipede tx: chaos: aborted leg %d\n",
                                 leg);
            }
        }
    }
    const uint64_t dl = s.tx ? s.tx->next_deadline() : s.rx->next_deadline();
    if (work || now >= dl) {
        if (s.tx)
            s.tx->poll(now);
        else
            s.rx->poll(now);
        if (s.rx) work += pipe_rx(*this); // output verified by this poll
    }
    if (now >= s.next_publish || table.load(std::memory_order_relaxed)) {
        s.next_publish = now + 100'000;
        publish(now, false);
    }
    const char *lm = s.tx ? s.tx->last_leg_message() : s.rx->last_leg_message();
    if (o.verbose && lm && *lm && s.last_leg_msg != lm) {
        s.last_leg_msg = lm;
        std::fprintf(stderr, "dpdk-millipede %s: %s\n", who(), lm);
    }
    return work;
}

// True when the transfer is over, one way or the other (status/message set).
bool Impl::session_finished(uint64_t now) {
    Session &s = session;
    if (!fail.empty()) return true;
    if (stop.load(std::memory_order_relaxed)) {
        fail = "interrupted";
        return true;
    }
    uint64_t segs = 0;
    for (auto &w : workers) segs += w->pub.segments_in.load(std::memory_order_relaxed);
    const uint64_t mark = s.tx ? s.tx->stripe().stats().chunks_acked + s.tx->stripe().bytes_in() + segs
                               : segs + s.rx->stripe().stats().bytes_out;
    if (mark != s.last_mark) {
        s.last_mark = mark;
        s.last_progress_us = now;
    }
    if (s.tx) {
        session::TxCore &tx = *s.tx;
        if (tx.state() == session::State::FAILED) {
            if (!s.done_at) s.done_at = now;
            if (tx.finished() || now - s.done_at > 200'000) { // let the RSTs go out
                fail = tx.message();
                const char *l = tx.last_leg_message();
                if (l && *l && std::strstr(fail.c_str(), "no leg") != nullptr)
                    fail += std::string(" (is dpdk-millipede rx listening there? last leg event: ") + l + ")";
                return true;
            }
        } else if (tx.state() == session::State::DONE) {
            if (!s.done_at) s.done_at = now;
            if (tx.finished()) return true;
        } else if (o.stall_timeout_us && now - s.last_progress_us > o.stall_timeout_us) {
            fail = "no progress for " + std::to_string(o.stall_timeout_us / 1'000'000) +
                   " s; giving up (last leg event: " + std::string(tx.last_leg_message()) + ")";
            return true;
        }
        return false;
    }
    session::RxCore &rx = *s.rx;
    if (rx.stats().accepted) s.saw_sender = true;
    if (rx.state() == session::State::FAILED) {
        if (!s.done_at) s.done_at = now;
        if (rx.finished() || now - s.done_at > 2'000'000) {
            fail = rx.message();
            return true;
        }
    } else if (rx.state() == session::State::DONE) {
        // finished(): the sender closed its legs after its end
        // acknowledgement. A sender whose FIN arrived while stdout was still
        // draining is counted as "closed mid-stream" and finished() then
        // waits for the linger: no connection left after DONE means nobody
        // is left to serve either.
        if (s.writer_done && (rx.finished() || rx.connections() == 0)) return true;
        if (s.writer->state() == pipeio::WriterState::FAILED) {
            fail = std::string("writing stdout: ") + s.writer->message();
            return true;
        }
    } else {
        // A refused sender (checkphrase, foreign session) before any session
        // was adopted: report it and give up, like viamillipede.
        const uint64_t refused = rx.stripe().stats().legs_refused;
        if (refused != s.refused_seen) {
            s.refused_seen = refused;
            if (rx.stripe().session_id() == 0 && !s.refused_at) s.refused_at = now;
        }
        if (s.refused_at && rx.stripe().session_id() == 0 &&
            (rx.connections() == 0 || now - s.refused_at > 2'000'000) && now - s.refused_at > 200'000) {
            fail = std::string("refused the sender: ") + rx.last_leg_message();
            return true;
        }
        if (o.wait_us && !s.saw_sender && now - s.t_start > o.wait_us) {
            fail = "no sender connected within " + std::to_string(o.wait_us / 1'000'000) + " s";
            return true;
        }
        if (s.saw_sender && o.stall_timeout_us && now - s.last_progress_us > o.stall_timeout_us) {
            fail = "no progress for " + std::to_string(o.stall_timeout_us / 1'000'000) +
                   " s; the sender went away (last leg event: " + std::string(rx.last_leg_message()) + ")";
            return true;
        }
    }
    return false;
}

// Fills the snapshot the user-facing side reads (progress line, SIGUSR1
// table, telemetry). Session lcore only; every ~100 ms and at the end.
static const char *core_leg_state_name(session::TxLegState s) {
    switch (s) {
    case session::TxLegState::ESTABLISHED: return "ESTABLISHED";
    case session::TxLegState::CLOSING: return "FIN-WAIT-1";
    case session::TxLegState::CONNECTING: return "SYN-SENT";
    case session::TxLegState::IDLE: break;
    }
    return "CLOSED";
}

void Impl::publish(uint64_t now, bool final) {
    Session &ss = session;
    stats::TransferSnapshot &sn = ss.scratch;
    // A table asked for between two regular snapshots keeps the rates of
    // the last interval: a few milliseconds would show noise (or zero).
    const bool new_interval = !ss.last_pub_t || now - ss.last_pub_t >= 50'000 || final;
    const double dt = ss.last_pub_t && new_interval ? (now - ss.last_pub_t) / 1e6 : 0;
    sn.valid = true;
    sn.tx = o.tx;
    sn.final = final;
    sn.elapsed_us = now - ss.t_start;
    sn.bytes = ss.tx ? ss.tx->stripe().bytes_in() : ss.rx->stripe().stats().bytes_out;
    sn.size = o.size_given || (o.tx && o.prbs) ? o.size : 0;
    if (dt > 0) sn.rate_mbs = (sn.bytes - ss.last_pub_bytes) / dt / 1e6;
    if (final && sn.elapsed_us) sn.rate_mbs = sn.bytes / (sn.elapsed_us / 1e6) / 1e6;
    sn.state = session::state_name(ss.tx ? ss.tx->state() : ss.rx->state());
    uint64_t injected = rx_injected, segs = 0, bad = 0, copied = 0, refd = 0, misdel = 0;
    for (auto &w : workers) {
        injected += w->pub.injected_drops.load(std::memory_order_relaxed);
        segs += w->pub.segments_in.load(std::memory_order_relaxed);
        bad += w->pub.bad_segments.load(std::memory_order_relaxed);
        copied += w->pub.bytes_copied.load(std::memory_order_relaxed);
        refd += w->pub.bytes_referenced.load(std::memory_order_relaxed);
        misdel += w->pub.misdelivered.load(std::memory_order_relaxed);
    }
    copied += ss.tx ? ss.tx->stripe().stats().bytes_copied : ss.rx->stripe().stats().bytes_copied;
    sn.injected_drops = injected;
    sn.segments_in = segs;
    sn.bad_segments = bad;
    sn.bytes_copied = copied;
    sn.bytes_referenced = refd;
    sn.misdelivered = misdel;
    sn.nstreams = 0;
    sn.legs_up = 0;
    const uint32_t slots = ss.tx ? ss.tx->legs() : std::min<uint32_t>(ss.rx->legs(), stats::TransferSnapshot::kMaxStreams);
    sn.legs = ss.tx ? slots : 0;
    for (uint32_t i = 0; i < slots && i < stats::TransferSnapshot::kMaxStreams; i++) {
        const session::ConnHandle h = ss.tx ? ss.tx->leg_handle(i) : ss.rx->leg_handle(i);
        const tcp::Endpoints *ep = ss.tx ? ss.tx->leg_endpoints(i) : ss.rx->leg_endpoints(i);
        if (!h || !ep) {
            ss.leg_prev_bytes[i] = 0;
            ss.leg_rate[i] = 0;
            continue;
        }
        LegRow row;
        const uint32_t wi = session::handle_host(h);
        if (wi < workers.size()) {
            std::lock_guard<std::mutex> g(workers[wi]->legs.m);
            for (uint32_t k = 0; k < workers[wi]->legs.n; k++)
                if (workers[wi]->legs.rows[k].handle == h) row = workers[wi]->legs.rows[k];
        }
        stats::StreamRow &r = sn.streams[sn.nstreams++];
        r.leg = i;
        r.local_ip = ip_key(ep->local_ip); // (IPv6: the key, which port_for_local() takes)
        r.remote_ip = ip_key(ep->remote_ip);
        r.v6 = ep->local_ip.is_v6;
        if (r.v6) {
            std::memcpy(r.local_ip6, ep->local_ip.bytes.data(), 16);
            std::memcpy(r.remote_ip6, ep->remote_ip.bytes.data(), 16);
        }
        r.local_port = ep->local_port;
        r.remote_port = ep->remote_port;
        const PortState *p = port_for_local(r.local_ip);
        r.port_id = p ? p->id : 0;
        // A leg the worker has not published yet: what the session knows.
        r.state = row.handle ? row.state : ss.tx ? core_leg_state_name(ss.tx->leg_state(i)) : "ESTABLISHED";
        r.bytes = ss.tx ? row.bytes_acked : row.bytes_received;
        if (new_interval) {
            ss.leg_rate[i] = dt > 0 && r.bytes >= ss.leg_prev_bytes[i] ? (r.bytes - ss.leg_prev_bytes[i]) / dt / 1e6 : 0;
            ss.leg_prev_bytes[i] = r.bytes;
        }
        r.rate_mbs = ss.leg_rate[i];
        r.cwnd = row.cwnd;
        r.srtt_us = row.srtt_us;
        r.retransmits = row.retransmits;
        if (std::strcmp(r.state, "ESTABLISHED") == 0) sn.legs_up++;
    }
    if (ss.tx) {
        sn.chunks_sent = ss.tx->stripe().stats().chunks_sent;
        sn.chunks_resent = ss.tx->stripe().stats().chunks_resent;
        sn.legs_lost = ss.tx->stats().legs_lost;
    } else {
        sn.chunks_sent = 0;
        sn.chunks_resent = 0;
        sn.legs_lost = ss.rx->stats().legs_lost;
    }
    if (new_interval) {
        sn.nlcores = 0;
        for (size_t i = 0; i < plan.lcores.size() && sn.nlcores < stats::TransferSnapshot::kMaxLcores; i++)
            sn.lcores[sn.nlcores++] = stats::LcoreRow{plan.lcores[i].id, role_names[i].c_str(),
                                                       lcore_stats[i].busy_permille.load(std::memory_order_relaxed) / 1000.0};
        ss.last_pub_t = now;
        ss.last_pub_bytes = sn.bytes;
    }
    board.publish(sn);
}

// The one line of the outcome, and with verbose 2 every counter.
void Impl::report_final() {
    Session &s = session;
    const uint64_t now = now_us();
    const double secs = (now - s.t_start) / 1e6;
    if (o.verbose >= 2) {
        for (auto &p : ports) {
            rte_eth_stats es{};
            rte_eth_stats_get(p->id, &es);
            std::fprintf(stderr, "dpdk-millipede %s: port %u: ipackets %lu opackets %lu imissed %lu ierrors %lu "
                                 "oerrors %lu rx_nombuf %lu\n",
                         who(), p->id, (unsigned long)es.ipackets, (unsigned long)es.opackets,
                         (unsigned long)es.imissed, (unsigned long)es.ierrors, (unsigned long)es.oerrors,
                         (unsigned long)es.rx_nombuf);
        }
        // One line per port in the form the first data plane printed (the
        // interop suite's path accounting reads it).
        uint64_t inj_tx = 0;
        for (auto &w : workers) inj_tx += w->pub.injected_drops.load();
        for (auto &p : ports) {
            uint64_t tx = owner_tx[p->index].sent, drops = owner_tx[p->index].drops;
            for (auto &w : workers)
                if (!p->tx_handoff || w->with_owner) tx += w->tx[p->index].sent;
            for (auto &w : workers) drops += w->tx[p->index].drops;
            std::fprintf(stderr, "dpdk-millipede %s: port %u: rx %lu tx %lu tx_drops %lu tcp_in %lu arp_req %lu arp_rep %lu "
                                 "icmp %lu\n",
                         who(), p->id, (unsigned long)p->rx_frames, (unsigned long)tx, (unsigned long)drops,
                         (unsigned long)p->tcp_in, (unsigned long)(p->index == 0 ? arp_requests : 0),
                         (unsigned long)(p->index == 0 ? arp_replies : 0), (unsigned long)(p->index == 0 ? icmp_replies : 0));
        }
        uint64_t bad = 0;
        for (auto &w : workers) bad += w->pub.bad_segments.load();
        std::fprintf(stderr, "dpdk-millipede %s: bad_ip %lu bad_tcp %lu injected_rx_drops %lu injected_tx_drops %lu\n",
                     who(), (unsigned long)rxc.drops[static_cast<unsigned>(RxDrop::BadIpChecksum)], (unsigned long)bad,
                     (unsigned long)rx_injected, (unsigned long)inj_tx);
        std::fprintf(stderr, "dpdk-millipede %s: rx lcore: frames %lu to_workers %lu to_owner %lu new_flows %lu "
                             "unknown_flows %lu backpressure %lu",
                     who(), (unsigned long)rxc.frames, (unsigned long)rxc.to_workers, (unsigned long)rxc.to_owner,
                     (unsigned long)rxc.new_flows, (unsigned long)rxc.unknown_flows, (unsigned long)rxc.backpressure);
        for (unsigned d = 0; d < kRxDropCount; d++)
            std::fprintf(stderr, " %s %lu", rx_drop_name(static_cast<RxDrop>(d)), (unsigned long)rxc.drops[d]);
        std::fprintf(stderr, "\ndpdk-millipede %s: owner: arp_requests %lu arp_replies %lu icmp_replies %lu "
                             "neigh_drops %lu tx_drops %lu\n",
                     who(), (unsigned long)arp_requests, (unsigned long)arp_replies, (unsigned long)icmp_replies,
                     (unsigned long)neigh_drops, (unsigned long)owner_tx_drops);
        if (!ports.empty() && ports[0]->v6) {
            std::fprintf(stderr, "dpdk-millipede %s: owner: nd_solicits %lu nd_adverts %lu nd_key_clashes %lu "
                                 "nd_names_full %lu",
                         who(), (unsigned long)nd_solicits, (unsigned long)nd_adverts, (unsigned long)nd_key_clashes,
                         (unsigned long)nd_names_full);
            for (unsigned e = 1; e < net::kNdErrorCount; e++)
                if (nd_errors[e])
                    std::fprintf(stderr, " %s %lu", net::nd_error_name(static_cast<net::NdError>(e)),
                                 (unsigned long)nd_errors[e]);
            std::fprintf(stderr, "\n");
        }
        for (auto &w : workers) {
            const session::HostStats &h = w->host->stats();
            std::fprintf(stderr,
                         "dpdk-millipede %s: worker %u (lcore %u): segments_in %lu bad_segments %lu unknown %lu "
                         "misdelivered %lu frames_out %lu bytes_referenced %lu bytes_copied %lu no_mbuf %lu "
                         "oversize %lu tx_drops %lu neigh_handoffs %lu connects %lu accepted %lu watchdog %lu "
                         "retired %lu reports_deferred %lu\n",
                         who(), w->index, w->lcore, (unsigned long)h.segments_in, (unsigned long)h.bad_segments +
                         w->pub.bad_segments.load(), (unsigned long)h.unknown_segments,
                         (unsigned long)w->pub.misdelivered.load(), (unsigned long)w->txc.frames,
                         (unsigned long)w->txc.bytes_referenced, (unsigned long)w->txc.bytes_copied,
                         (unsigned long)w->txc.no_mbuf, (unsigned long)w->txc.oversize, (unsigned long)w->tx_drops,
                         (unsigned long)w->neigh_handoffs, (unsigned long)h.connects, (unsigned long)h.accepted,
                         (unsigned long)h.watchdog_kills, (unsigned long)h.retired,
                         (unsigned long)h.reports_deferred);
            if (!o.tx) {
                const tcp::ListenerStats ls = w->host->listener_stats();
                std::fprintf(stderr,
                             "dpdk-millipede rx: worker %u: listener syns %lu syn_acks %lu syn_cookies_sent %lu "
                             "syn_cookies_accepted %lu half_open_expired %lu connections %lu\n",
                             w->index, (unsigned long)ls.syns_received, (unsigned long)ls.syn_acks_sent,
                             (unsigned long)ls.syn_cookies_sent, (unsigned long)ls.syn_cookies_accepted,
                             (unsigned long)ls.half_open_expired, (unsigned long)ls.connections_created);
            }
            std::fprintf(stderr, "dpdk-millipede %s: worker %u: rejected segments:", who(), w->index);
            for (unsigned e = 1; e < 5; e++)
                std::fprintf(stderr, " %s %lu", rx_segment_error_name(static_cast<RxSegmentError>(e)),
                             (unsigned long)w->rx_errors[e]);
            std::fprintf(stderr, "\n");
        }
        const stats::TransferSnapshot sn = board.read();
        std::fprintf(stderr, "dpdk-millipede %s: own copies per byte %.3f (copied %lu, referenced %lu of %lu bytes)\n",
                     who(), sn.bytes ? double(sn.bytes_copied) / double(sn.bytes) : 0.0,
                     (unsigned long)sn.bytes_copied, (unsigned long)sn.bytes_referenced, (unsigned long)sn.bytes);
        if (s.tx) {
            const auto &st = s.tx->stripe().stats();
            std::fprintf(stderr,
                         "dpdk-millipede tx: session %s, stripe: %lu bytes in %lu chunks sealed, %lu sent, %lu acked, "
                         "%zu in flight, chunks out of the pool %u, input %s\n",
                         session::state_name(s.tx->state()), (unsigned long)st.bytes_in,
                         (unsigned long)st.chunks_sealed, (unsigned long)st.chunks_sent, (unsigned long)st.chunks_acked,
                         s.tx->stripe().chunks_in_flight(), s.chunks->out(), s.input_done ? "done" : "open");
            std::fprintf(stderr, "dpdk-millipede tx: reader %s: %lu bytes in %lu chunks handed over, %lu waits for a "
                                 "free buffer\n",
                         s.reader->message(), (unsigned long)s.reader->stats().bytes.load(),
                         (unsigned long)s.reader->stats().chunks.load(), (unsigned long)s.reader->stats().pool_waits.load());
        } else {
            std::fprintf(stderr,
                         "dpdk-millipede rx: session %s, stripe: next chunk %lu, %lu bytes buffered, %lu delivered, "
                         "%lu out; writer %lu bytes in flight, end %s\n",
                         session::state_name(s.rx->state()), (unsigned long)s.rx->stripe().next_seq(),
                         (unsigned long)s.rx->stripe().buffered_bytes(),
                         (unsigned long)s.rx->stripe().stats().bytes_delivered,
                         (unsigned long)s.rx->stripe().stats().bytes_out, (unsigned long)s.inflight,
                         s.end_submitted ? (s.writer_done ? "written" : "submitted") : "not yet");
        }
        if (s.tx)
            std::fprintf(stderr,
                         "dpdk-millipede tx: connects %lu connect_failures %lu legs_lost %lu resent %lu recycled %lu "
                         "chaos %lu\n",
                         (unsigned long)s.tx->stats().connects, (unsigned long)s.tx->stats().connect_failures,
                         (unsigned long)s.tx->stats().legs_lost, (unsigned long)s.tx->stripe().stats().chunks_resent,
                         (unsigned long)s.tx->stripe().stats().legs_recycled, (unsigned long)s.chaos_breaks);
    }
    status = 1;
    if (!fail.empty()) {
        message = fail;
    } else if (s.tx) {
        if (s.tx->state() != session::State::DONE || (!o.compat && !s.tx->confirmed()))
            message = s.tx->message();
        else
            status = 0, message = s.tx->message();
    } else {
        if (s.rx->state() != session::State::DONE || !s.writer_done)
            message = s.rx->message();
        else
            status = 0, message = s.rx->message();
    }
    if (status != 0) {
        std::fprintf(stderr, "dpdk-millipede %s: %s\n", who(), message.c_str());
    } else if (o.verbose) {
        std::fprintf(stderr, "dpdk-millipede %s: %s (%.3f s)\n", who(), message.c_str(), secs);
    }
}

} // namespace millipede::dataplane
