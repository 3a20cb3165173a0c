// The tap's lcore layout with classifier shards (dataplane/tap_layout.h):
// how roles collapse with few lcores, where shards and logical workers go,
// and that one shard is the plan the tap always had (control | rx | workers).
#include <gtest/gtest.h>

#include <set>

#include "millipede/dataplane/tap_layout.h"

using namespace millipede::dataplane;

namespace {
std::vector<unsigned> ids(unsigned n) {
    std::vector<unsigned> v;
    for (unsigned i = 0; i < n; ++i) v.push_back(i);
    return v;
}

// Every shard on exactly one rx lcore, every logical worker on exactly one
// worker lcore.
void expect_complete(const TapLayout &t, unsigned shards, unsigned workers) {
    std::multiset<unsigned> s, w;
    for (unsigned i = 0; i < t.plan.lcores.size(); ++i) {
        for (unsigned x : t.shards[i]) {
            EXPECT_TRUE(t.plan.lcores[i].roles & kRoleRx) << "shard " << x << " on a non-rx lcore " << i;
            s.insert(x);
        }
        for (unsigned x : t.plan.lcores[i].workers) {
            EXPECT_TRUE(t.plan.lcores[i].roles & kRoleWorker);
            w.insert(x);
        }
    }
    for (unsigned x = 0; x < shards; ++x) EXPECT_EQ(s.count(x), 1u) << "shard " << x;
    for (unsigned x = 0; x < workers; ++x) EXPECT_EQ(w.count(x), 1u) << "worker " << x;
    EXPECT_EQ(s.size(), shards);
    EXPECT_EQ(w.size(), workers);
}
} // namespace

TEST(TapLayout, OneShardIsTheTapsPlan) {
    // 1 lcore: everything; 2: control | rx+worker; 3+: control | rx | workers.
    EXPECT_EQ(plan_tap_lcores(ids(1), 1, 0).describe(), "lcore 0: control+rx shard 0+worker 0");
    EXPECT_EQ(plan_tap_lcores(ids(2), 1, 0).describe(), "lcore 0: control; lcore 1: rx shard 0+worker 0");
    EXPECT_EQ(plan_tap_lcores(ids(4), 1, 0).describe(),
              "lcore 0: control; lcore 1: rx shard 0; lcore 2: worker 0; lcore 3: worker 1");
    EXPECT_EQ(plan_tap_lcores(ids(4), 1, 0).plan.workers, 2u);
}

TEST(TapLayout, ShardsGetTheirOwnRxLcoresWhenThereAreEnough) {
    TapLayout t = plan_tap_lcores(ids(4), 2, 2);
    EXPECT_EQ(t.describe(), "lcore 0: control; lcore 1: rx shard 0; lcore 2: rx shard 1; lcore 3: workers 0,1");
    expect_complete(t, 2, 2);
    t = plan_tap_lcores(ids(6), 2, 0); // default workers: one per worker lcore
    EXPECT_EQ(t.plan.workers, 3u);
    EXPECT_EQ(t.worker_lcores, 3u);
    expect_complete(t, 2, 3);
}

TEST(TapLayout, ShardsShareRxLcoresWhenTooFew) {
    // 3 lcores: one rx lcore runs both shards, one worker lcore remains.
    TapLayout t = plan_tap_lcores(ids(3), 2, 0);
    EXPECT_EQ(t.describe(), "lcore 0: control; lcore 1: rx shards 0,1; lcore 2: worker 0");
    expect_complete(t, 2, 1);
    // 2 lcores: rx of every shard and the workers on the second.
    t = plan_tap_lcores(ids(2), 4, 2);
    EXPECT_EQ(t.describe(), "lcore 0: control; lcore 1: rx shards 0,1,2,3+workers 0,1");
    expect_complete(t, 4, 2);
    // 1 lcore: everything there.
    t = plan_tap_lcores(ids(1), 3, 0);
    expect_complete(t, 3, 1);
    EXPECT_EQ(t.plan.lcores[0].roles, uint32_t(kRoleControl | kRoleRx | kRoleWorker));
    // 5 lcores, 4 shards: 3 rx lcores (one keeps a worker lcore), shard 3 shares.
    t = plan_tap_lcores(ids(5), 4, 0);
    EXPECT_EQ(t.describe(), "lcore 0: control; lcore 1: rx shards 0,3; lcore 2: rx shard 1; lcore 3: rx shard 2; "
                            "lcore 4: worker 0");
    expect_complete(t, 4, 1);
}

TEST(TapLayout, MoreLogicalWorkersThanLcoresGoRoundRobin) {
    TapLayout t = plan_tap_lcores(ids(6), 2, 5);
    expect_complete(t, 2, 5);
    EXPECT_EQ(t.plan.lcores[3].workers, (std::vector<unsigned>{0, 3}));
    EXPECT_EQ(t.plan.lcores[5].workers, (std::vector<unsigned>{2}));
}
