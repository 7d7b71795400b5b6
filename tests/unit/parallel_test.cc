#include "harness/parallel.h"

#include <gtest/gtest.h>

namespace cb {
namespace {

TEST(Parallel, BatchSharesCoverTheBatchOnce) {
  // 10 sequences over 4 replicas: 3, 3, 2, 2 starting at 0, 3, 6, 8.
  const int64_t expected_share[] = {3, 3, 2, 2}, expected_first[] = {0, 3, 6, 8};
  for (int d = 0; d < 4; ++d) {
    EXPECT_EQ(LocalBatch(10, 4, d), expected_share[d]);
    EXPECT_EQ(FirstSequence(10, 4, d), expected_first[d]);
  }
  EXPECT_EQ(LocalBatch(8, 1, 0), 8);
}

RankTimings Rank(int rank, const std::string& host, const std::string& source, double joules) {
  RankTimings t;
  t.rank = rank;
  t.host = host;
  t.energy_source = source;
  t.energy_joules = joules;
  return t;
}

TEST(Parallel, ClusterEnergySumsGpusAndCountsHostsOnce) {
  double joules = 0;
  std::string method;
  // Two ranks per host: host-wide readings once per host, from its lowest rank.
  EXPECT_TRUE(ClusterEnergy({Rank(0, "a", "rapl", 10), Rank(1, "a", "rapl", 11),
                             Rank(2, "b", "rapl", 20), Rank(3, "b", "rapl", 21)},
                            &joules, &method));
  EXPECT_DOUBLE_EQ(joules, 30);
  EXPECT_NE(method.find("2 host(s)"), std::string::npos);
  // One GPU per rank: every reading counts.
  EXPECT_TRUE(ClusterEnergy({Rank(0, "a", "nvml", 5), Rank(1, "a", "nvml", 6)}, &joules, &method));
  EXPECT_DOUBLE_EQ(joules, 11);
  EXPECT_FALSE(ClusterEnergy({Rank(0, "a", "", 0)}, &joules, &method));
}

}  // namespace
}  // namespace cb
