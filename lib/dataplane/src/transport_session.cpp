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

// `compress`: chunks from the reader into the deflate pool, in stream
// order, while it has room. A chunk cut by leglimit (the reader's CRCs
// cover all of it) or an empty last one passes through untouched.
bool feed_deflate(Impl &p, unsigned &work) {
    Session &s = p.session;
    while (!s.fed_done && s.deflate->outstanding() < s.deflate->capacity()) {
        pipeio::Chunk *c = s.reader->poll();
        if (!c) break;
        if (c->flags & pipeio::CHUNK_ERROR) {
            p.fail = std::string("reading stdin: ") + s.reader->message();
            return false;
        }
        uint32_t len = c->len;
        if (s.limit_bytes != UINT64_MAX && s.fed + len > s.limit_bytes)
            len = static_cast<uint32_t>(s.limit_bytes - s.fed);
        pipeio::CodecJob j;
        j.in = c->data;
        j.in_len = c->len;
        j.in_crc32c = static_cast<uint32_t>(c->sums[0]);
        j.pass = len != c->len || len == 0 || !s.reader_sums;
        j.cookie = reinterpret_cast<uintptr_t>(c);
        s.deflate->submit(j); // (cannot fail: below capacity)
        s.fed += len;
        if ((c->flags & pipeio::CHUNK_END) || s.fed >= s.limit_bytes) s.fed_done = true;
        work++;
    }
    return true;
}

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
    // The pool deflates ahead while the sender has no room.
    if (s.deflate && !s.input_done && !feed_deflate(p, work)) return work;
    for (int rounds = 0; rounds < 8 && !s.input_done; rounds++) {
        if (!s.pending && s.deflate) {
            if (!s.deflate->poll(s.pending_job)) break;
            if (!feed_deflate(p, work)) return work; // (its slot is free again)
            s.pending = reinterpret_cast<pipeio::Chunk *>(s.pending_job.cookie);
        }
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
            const bool deflated = s.deflate && s.pending_job.out_len != 0; // (never for a cut chunk)
            const stripe::StripeSender::ChunkSums sums =
                deflated ? stripe::StripeSender::ChunkSums{s.pending_job.out_crc32c, c->sums[1], c->len}
                         : stripe::StripeSender::ChunkSums{static_cast<uint32_t>(c->sums[0]), c->sums[1]};
            if (!st.push_chunk(c->data, deflated ? s.pending_job.out_len : len, ref, now,
                               s.reader_sums && len == c->len ? &sums : nullptr)) {
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

// The writer's completions: the end record's sets writer_done, a failed
// write fails the session (false: stop this round), every other one goes
// to `written`.
template <class Written> bool drain_writer(Impl &p, unsigned &work, Written &&written) {
    Session &s = p.session;
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
            return false;
        }
        written(c);
    }
    return true;
}

// A compressed session (docs/wire.md 2.20): delivered chunks go through
// the inflate pool in order, raw ones passing through it so the order
// holds; what comes back is digested (the end record's CRC64 covers the
// original bytes) and written; a chunk's reorder-window buffer is freed
// once stdout took its bytes.
unsigned pipe_rx_inflate(Impl &p) {
    Session &s = p.session;
    unsigned work = 0;
    if (!drain_writer(p, work, [&s](const pipeio::Completion &c) {
            s.rx->output_consumed(s.inflate_payload[c.cookie % s.inflate_slots]);
            s.inflate_written++;
            s.inflate_done_below = c.cookie + 1; // (stdout completes in order)
        }))
        return work;
    pipeio::CodecJob j;
    while (s.inflate->poll(j)) {
        work++;
        if (j.status != codec::InflateStatus::OK) {
            // Its CRC32C on the wire matched: the sender sent this stream.
            // Asking again would bring the same bytes; nothing of it is written.
            p.fail = "chunk " + std::to_string(j.cookie) + " does not inflate: " +
                     codec::inflate_status_text(j.status) + "; nothing of it was written";
            return work;
        }
        s.rx->digest_output(j.result, j.out_len);
        if (!s.writer->submit(j.result, j.out_len, j.cookie)) { // (cannot happen: fewer buffers than its queue)
            p.fail = "internal: stdout writer queue full";
            return work;
        }
    }
    const stripe::StripeReceiver &st = s.rx->stripe();
    stripe::StripeReceiver::Held h;
    // parity (docs/wire.md 2.21): a stripe's parity seqs and the data seqs
    // a short stripe left out are held with no bytes; the receiver frees
    // them as soon as the output reaches them, so they are passed over here
    // (counted as written) instead of going through the pool. Every seq
    // below output_base() not yet submitted is such a seq: one with bytes
    // is freed only after its bytes were written. A passed-over seq keeps
    // its output buffer index unused until the jobs before it are written
    // (inflate_done_below), so a job never takes a buffer still in use.
    const auto pass_over = [&s](uint64_t n) {
        const bool idle = s.inflate_written == s.inflate_next; // no job of the pool outstanding
        s.inflate_next += n;
        s.inflate_written += n;
        if (idle) s.inflate_done_below = s.inflate_next;
    };
    if (s.inflate_next < st.output_base()) pass_over(st.output_base() - s.inflate_next);
    while (s.inflate_next - s.inflate_done_below < s.inflate_slots &&
           s.inflate->outstanding() < s.inflate->capacity() && st.held(s.inflate_next, h)) {
        if (h.len == 0) {
            pass_over(1);
            continue;
        }
        const uint32_t slot = static_cast<uint32_t>(s.inflate_next % s.inflate_slots);
        pipeio::CodecJob in;
        in.in = const_cast<uint8_t *>(h.data);
        in.in_len = h.len;
        in.compressed = h.compressed;
        in.out = s.inflate_mem.get() + size_t(slot) * s.inflate_bytes;
        in.out_cap = s.inflate_bytes;
        in.cookie = s.inflate_next;
        s.inflate->submit(in);
        s.inflate_payload[slot] = h.len;
        s.inflate_next++;
        work++;
    }
    if (!s.end_submitted && s.rx->state() == session::State::DONE && s.inflate_written == s.inflate_next &&
        st.output_base() == st.next_seq()) {
        if (s.writer->submit_end()) {
            s.end_submitted = true;
            work++;
        }
    }
    return work;
}

// Verified output to the writer.
unsigned pipe_rx(Impl &p) {
    Session &s = p.session;
    if (s.inflate && s.rx->stripe().compressed_session()) return pipe_rx_inflate(p);
    unsigned work = 0;
    if (!drain_writer(p, work, [&s](const pipeio::Completion &c) {
            s.rx->output_consumed(c.len);
            s.inflight -= c.len;
        }))
        return work;
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
            // Full duplex: accepted connections are the RxCore's, those
            // opened by CONNECT the TxCore's (the handle says which).
            for (unsigned i = 0; i < n; i++) {
                if (s.tunnel && s.tunnel->takes(reps[i]))
                    s.tunnel->on_report(reps[i], now);
                else if (s.rx && (!s.tx || session::handle_accepted(reps[i].handle)))
                    s.rx->on_report(reps[i], now);
                else
                    s.tx->on_report(reps[i], now);
            }
            work += n;
        }
    }
    if (s.tx) work += pipe_tx(*this, now);
    if (s.rx) work += pipe_rx(*this);
    if (s.tunnel) work += s.tunnel->poll(now);
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
    const uint64_t dl = std::min(s.tx ? s.tx->next_deadline() : UINT64_MAX, s.rx ? s.rx->next_deadline() : UINT64_MAX);
    if (work || now >= dl) {
        if (s.tx) s.tx->poll(now);
        if (s.rx) {
            s.rx->poll(now);
            work += pipe_rx(*this); // output verified by this poll
        }
    }
    if (now >= s.next_publish || table.load(std::memory_order_relaxed)) {
        s.next_publish = now + 100'000;
        publish(now, false);
    }
    if (o.verbose) {
        // Each direction's leg events under its own name (duplex: both).
        const char *tlm = s.tx ? s.tx->last_leg_message() : nullptr;
        const char *rlm = s.rx ? s.rx->last_leg_message() : nullptr;
        if (tlm && *tlm && s.last_leg_msg != tlm) {
            s.last_leg_msg = tlm;
            std::fprintf(stderr, "dpdk-millipede tx: %s\n", tlm);
        }
        if (rlm && *rlm && s.last_rx_leg_msg != rlm) {
            s.last_rx_leg_msg = rlm;
            std::fprintf(stderr, "dpdk-millipede rx: %s\n", rlm);
        }
    }
    return work;
}

// True when the transfer is over, one way or the other (status/message set).
// Full duplex: over when both directions are done, or at once when either
// fails (the `fail` line names the direction).
bool Impl::session_finished(uint64_t now) {
    Session &s = session;
    if (!fail.empty()) return true;
    if (stop.load(std::memory_order_relaxed)) {
        const char *why = stop_why.load(std::memory_order_acquire);
        fail = why ? why : "interrupted";
        return true;
    }
    std::string why;
    bool all_done = true;
    if (s.tx && !s.txe.over) {
        const Outcome t = tx_outcome(now, why);
        if (t == Outcome::Failed) {
            fail = o.duplex ? "tx: " + why : why;
            return true;
        }
        if (t == Outcome::Done) s.txe.over = true;
        else all_done = false;
    }
    if (s.rx && !s.rxe.over) {
        const Outcome r = rx_outcome(now, why);
        if (r == Outcome::Failed) {
            fail = o.duplex ? "rx: " + why : why;
            return true;
        }
        if (r == Outcome::Done) s.rxe.over = true;
        else all_done = false;
    }
    return all_done;
}

Impl::Outcome Impl::tx_outcome(uint64_t now, std::string &why) {
    Session &s = session;
    Session::DirectionEnd &e = s.txe;
    uint64_t segs = 0;
    for (auto &w : workers) segs += w->pub.segments_in.load(std::memory_order_relaxed);
    const uint64_t mark = s.tx->stripe().stats().chunks_acked + s.tx->stripe().bytes_in() + segs;
    if (mark != e.last_mark) {
        e.last_mark = mark;
        e.last_progress_us = now;
    }
    session::TxCore &tx = *s.tx;
    if (tx.state() == session::State::FAILED) {
        if (!e.done_at) e.done_at = now;
        if (tx.finished() || now - e.done_at > 200'000) { // let the RSTs go out
            why = tx.message();
            const char *l = tx.last_leg_message();
            if (l && *l && std::strstr(why.c_str(), "no leg") != nullptr)
                why += std::string(" (is dpdk-millipede rx listening there? last leg event: ") + l + ")";
            return Outcome::Failed;
        }
    } else if (tx.state() == session::State::DONE) {
        if (!e.done_at) e.done_at = now;
        if (tx.finished()) return Outcome::Done;
    } else if (o.stall_timeout_us && now - e.last_progress_us > o.stall_timeout_us) {
        why = "no progress for " + std::to_string(o.stall_timeout_us / 1'000'000) +
              " s; giving up (last leg event: " + std::string(tx.last_leg_message()) + ")";
        return Outcome::Failed;
    }
    return Outcome::Running;
}

Impl::Outcome Impl::rx_outcome(uint64_t now, std::string &why) {
    Session &s = session;
    Session::DirectionEnd &e = s.rxe;
    uint64_t segs = 0;
    for (auto &w : workers) segs += w->pub.segments_in.load(std::memory_order_relaxed);
    const uint64_t mark = segs + s.rx->stripe().stats().bytes_out;
    if (mark != e.last_mark) {
        e.last_mark = mark;
        e.last_progress_us = now;
    }
    session::RxCore &rx = *s.rx;
    if (rx.stats().accepted) s.saw_sender = true;
    if (rx.state() == session::State::FAILED) {
        if (!e.done_at) e.done_at = now;
        if (rx.finished() || now - e.done_at > 2'000'000) {
            why = rx.message();
            return Outcome::Failed;
        }
    } else if (rx.state() == session::State::DONE) {
        // finished(): the sender closed its legs after its end
        // acknowledgement. A sender whose FIN arrived while stdout was still
        // draining is counted as "closed mid-stream" and finished() then
        // waits for the linger: no connection left after DONE means nobody
        // is left to serve either.
        if (s.writer_done && (rx.finished() || rx.connections() == 0)) return Outcome::Done;
        if (s.writer->state() == pipeio::WriterState::FAILED) {
            why = std::string("writing stdout: ") + s.writer->message();
            return Outcome::Failed;
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
            const char *refusal = rx.stripe().last_refusal_message();
            why = std::string("refused the sender: ") + (refusal[0] ? refusal : rx.last_leg_message());
            return Outcome::Failed;
        }
        if (o.wait_us && !s.saw_sender && now - s.t_start > o.wait_us) {
            why = "no sender connected within " + std::to_string(o.wait_us / 1'000'000) + " s";
            return Outcome::Failed;
        }
        if (s.saw_sender && o.stall_timeout_us && now - e.last_progress_us > o.stall_timeout_us) {
            why = "no progress for " + std::to_string(o.stall_timeout_us / 1'000'000) +
                  " s; the sender went away (last leg event: " + std::string(rx.last_leg_message()) + ")";
            return Outcome::Failed;
        }
    }
    return Outcome::Running;
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
    sn.duplex = o.duplex;
    sn.final = final;
    sn.elapsed_us = now - ss.t_start;
    // The main figures are the sending direction's (duplex: rx_bytes and
    // rx_state add the receiving one's). A compressed session's rx counts
    // the stream bytes stdout took, not the payload's.
    const auto rx_out = [&ss]() -> uint64_t {
        return ss.rx->stripe().compressed_session() ? ss.writer->stats().bytes.load(std::memory_order_relaxed)
                                                    : ss.rx->stripe().stats().bytes_out;
    };
    sn.bytes = ss.tx ? ss.tx->stripe().bytes_in() : rx_out();
    sn.rx_bytes = ss.rx ? rx_out() : 0;
    sn.rx_state = ss.rx ? session::state_name(ss.rx->state()) : "";
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
    if (ss.tx) copied += ss.tx->stripe().stats().bytes_copied;
    if (ss.rx) copied += ss.rx->stripe().stats().bytes_copied;
    if (ss.tx && ss.deflate) copied += ss.deflate->stats().copied.load(std::memory_order_relaxed); // deflate's copy-back
    sn.injected_drops = injected;
    sn.segments_in = segs;
    sn.bytes_copied = copied;
    sn.bad_segments = bad;
    sn.bytes_referenced = refd;
    sn.misdelivered = misdel;
    sn.nstreams = 0;
    sn.legs_up = 0;
    sn.legs = ss.tx ? ss.tx->legs() : 0;
    // One row per connection: the tx legs first, then (rx, duplex) the
    // accepted ones; a row's rate is kept by its position in the table.
    auto rows = [&](bool sending) {
        const uint32_t slots = sending ? ss.tx->legs() : ss.rx->legs();
        for (uint32_t i = 0; i < slots && sn.nstreams < stats::TransferSnapshot::kMaxStreams; i++) {
            const uint32_t pos = sn.nstreams;
            const session::ConnHandle h = sending ? ss.tx->leg_handle(i) : ss.rx->leg_handle(i);
            const tcp::Endpoints *ep = sending ? ss.tx->leg_endpoints(i) : ss.rx->leg_endpoints(i);
            if (!h || !ep) continue;
            LegRow row;
            const uint32_t wi = session::handle_host(h);
            if (wi < workers.size()) {
                std::lock_guard<std::mutex> g(workers[wi]->legs.m);
                for (uint32_t k = 0; k < workers[wi]->legs.n; k++)
                    if (workers[wi]->legs.rows[k].handle == h) row = workers[wi]->legs.rows[k];
            }
            stats::StreamRow &r = sn.streams[sn.nstreams++];
            r.leg = i;
            r.accepted = !sending;
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
            r.state = row.handle ? row.state : sending ? core_leg_state_name(ss.tx->leg_state(i)) : "ESTABLISHED";
            r.bytes = sending ? row.bytes_acked : row.bytes_received;
            if (new_interval) {
                ss.leg_rate[pos] =
                    dt > 0 && r.bytes >= ss.leg_prev_bytes[pos] ? (r.bytes - ss.leg_prev_bytes[pos]) / dt / 1e6 : 0;
                ss.leg_prev_bytes[pos] = r.bytes;
            }
            r.rate_mbs = ss.leg_rate[pos];
            r.cwnd = row.cwnd;
            r.srtt_us = row.srtt_us;
            r.retransmits = row.retransmits;
            if (sending && std::strcmp(r.state, "ESTABLISHED") == 0) sn.legs_up++;
            if (!sending && !ss.tx && std::strcmp(r.state, "ESTABLISHED") == 0) sn.legs_up++;
        }
    };
    if (ss.tx) rows(true);
    if (ss.rx) rows(false);
    if (ss.tx) {
        sn.chunks_sent = ss.tx->stripe().stats().chunks_sent;
        sn.chunks_resent = ss.tx->stripe().stats().chunks_resent;
        sn.legs_lost = ss.tx->stats().legs_lost + (ss.rx ? ss.rx->stats().legs_lost : 0);
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
        // parity (docs/wire.md 2.21): what the dead legs cost
        if (s.tx && o.parity)
            std::fprintf(stderr, "dpdk-millipede tx: parity: stripes %lu parity_chunks_sent %lu covered %lu resent %lu\n",
                         (unsigned long)s.tx->stripe().stats().parity_stripes,
                         (unsigned long)s.tx->stripe().stats().parity_chunks_sent,
                         (unsigned long)s.tx->stripe().stats().parity_covered,
                         (unsigned long)s.tx->stripe().stats().chunks_resent);
        if (s.rx && s.rx->stripe().stats().parity_chunks)
            std::fprintf(stderr, "dpdk-millipede rx: parity: parity_chunks %lu rebuilt %lu\n",
                         (unsigned long)s.rx->stripe().stats().parity_chunks,
                         (unsigned long)s.rx->stripe().stats().parity_rebuilt);
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
            if (receives()) {
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
        if (s.tunnel) {
            const TunnelEndsStats &ts = s.tunnel->stats();
            std::fprintf(stderr,
                         "dpdk-millipede %s: tunnel on the ports: accepted %lu refused %lu closed %lu resets %lu "
                         "bytes_in %lu bytes_out %lu open %zu commands_deferred %lu\n",
                         who(), (unsigned long)ts.accepted, (unsigned long)ts.refused, (unsigned long)ts.closed,
                         (unsigned long)ts.resets, (unsigned long)ts.bytes_in, (unsigned long)ts.bytes_out,
                         s.tunnel->connections(), (unsigned long)ts.commands_deferred);
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
        }
        if (s.rx) {
            std::fprintf(stderr,
                         "dpdk-millipede rx: session %s, stripe: next chunk %lu, %lu bytes buffered, %lu delivered, "
                         "%lu out; writer %lu bytes in flight, end %s\n",
                         session::state_name(s.rx->state()), (unsigned long)s.rx->stripe().next_seq(),
                         (unsigned long)s.rx->stripe().buffered_bytes(),
                         (unsigned long)s.rx->stripe().stats().bytes_delivered,
                         (unsigned long)s.rx->stripe().stats().bytes_out, (unsigned long)s.inflight,
                         s.end_submitted ? (s.writer_done ? "written" : "submitted") : "not yet");
        }
        // tx: stream bytes in, payload bytes out; rx the other way round.
        const auto codec_line = [](const char *side, const pipeio::CodecPool &pool, bool deflating) {
            const auto &cs = pool.stats();
            const uint64_t in = cs.bytes_in.load(), out = cs.bytes_out.load();
            const uint64_t stream = deflating ? in : out, payload = deflating ? out : in;
            std::fprintf(stderr,
                         "dpdk-millipede %s: compress: %lu stream bytes as %lu payload bytes (ratio %.3f), %lu chunks, "
                         "%lu of them raw (did not shrink)\n",
                         side, (unsigned long)stream, (unsigned long)payload,
                         payload ? double(stream) / double(payload) : 0.0, (unsigned long)cs.jobs.load(),
                         (unsigned long)cs.raw.load());
        };
        if (s.tx && s.deflate) codec_line("tx", *s.deflate, true);
        if (s.rx && s.inflate && s.rx->stripe().compressed_session()) codec_line("rx", *s.inflate, false);
        if (s.tx)
            std::fprintf(stderr,
                         "dpdk-millipede tx: connects %lu connect_failures %lu legs_lost %lu resent %lu recycled %lu "
                         "chaos %lu connects_abandoned %lu\n",
                         (unsigned long)s.tx->stats().connects, (unsigned long)s.tx->stats().connect_failures,
                         (unsigned long)s.tx->stats().legs_lost, (unsigned long)s.tx->stripe().stats().chunks_resent,
                         (unsigned long)s.tx->stripe().stats().legs_recycled, (unsigned long)s.chaos_breaks,
                         (unsigned long)s.tx->stats().connects_abandoned);
    }
    // Success needs every direction this process runs: tx's end
    // acknowledged (native) and rx's end written to stdout.
    status = 1;
    const bool tx_ok = !s.tx || (s.tx->state() == session::State::DONE && (o.compat || s.tx->confirmed()));
    const bool rx_ok = !s.rx || (s.rx->state() == session::State::DONE && s.writer_done);
    if (!fail.empty()) {
        message = fail;
    } else if (o.duplex) {
        message = std::string("tx: ") + s.tx->message() + "; rx: " + s.rx->message();
        if (tx_ok && rx_ok) status = 0;
    } else {
        message = s.tx ? s.tx->message() : s.rx->message();
        if (tx_ok && rx_ok) status = 0;
    }
    if (status != 0) {
        std::fprintf(stderr, "dpdk-millipede %s: %s\n", who(), message.c_str());
    } else if (o.verbose) {
        std::fprintf(stderr, "dpdk-millipede %s: %s (%.3f s)\n", who(), message.c_str(), secs);
    }
}

} // namespace millipede::dataplane
