// What tap tells its user: the stats line (--stats-interval, SIGUSR1), the
// JSON summary at exit (--summary) and the /millipede/tap/* telemetry
// commands. Reads the plane's and the workers' single-writer counters.
//
// Contract: print_stats_line() and write_summary() on the main lcore;
// the telemetry callbacks run on rte_telemetry's thread and read the run
// through a pointer that unregister_telemetry() clears (under a mutex)
// before the run's objects go away.
#pragma once

#include <cstdio>
#include <memory>
#include <vector>

#include "millipede/dataplane/tap.h"
#include "tap_records.h"
#include "tap_worker.h"

namespace millipede::app {

struct TapRun {
    dataplane::TapPlane *plane = nullptr;
    std::vector<std::unique_ptr<TapWorker>> workers; // per logical worker
    std::unique_ptr<RecordWriter> writer;            // null without --flows-out
    flow::Policy policy = flow::Policy::Busy;
    bool migrate = false;
    bool dpi = true;
    uint32_t flow_capacity = 0;   // the flow table's size
    uint64_t estimated_flows = 0; // capture files only: the flows they hold, estimated (0: not counted)
};

void print_stats_line(TapRun &r);
void write_summary(TapRun &r, FILE *f, double seconds);
void register_telemetry(TapRun &r);
void unregister_telemetry();

} // namespace millipede::app
