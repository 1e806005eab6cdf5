// The BPF ring buffer's sizes (src/live/ring.h): the map size and the records
// each CPU makes between two wakeups of the consumer.
#include <gtest/gtest.h>

#include "live/ring.h"

using bdt::live::ring_size;
using bdt::live::wake_batch;

TEST(Ring, SizeIsAPowerOfTwoOfAtLeastAPage) {
  EXPECT_EQ(ring_size(0, 4096), 4096u);
  EXPECT_EQ(ring_size(4097, 4096), 8192u);
  EXPECT_EQ(ring_size(8u << 20, 4096), 8u << 20);
  EXPECT_EQ(ring_size((8u << 20) + 1, 4096), 16u << 20);
  EXPECT_EQ(ring_size(UINT32_MAX, 4096), 1u << 30);
}

TEST(Ring, WakeBatchKeepsUnannouncedRecordsInASixteenthOfTheRing) {
  const uint32_t rec = 176;  // a record and its ring header
  EXPECT_EQ(wake_batch(8u << 20, 2, rec), 1024u);  // the default on this machine's 2 CPUs
  for (uint32_t ring : {1u << 20, 8u << 20, 64u << 20}) {
    for (uint32_t cpus : {1u, 2u, 7u, 64u, 256u, 1024u, 8192u}) {
      const uint32_t n = wake_batch(ring, cpus, rec);
      SCOPED_TRACE(testing::Message() << "ring " << ring << " cpus " << cpus << " batch " << n);
      EXPECT_GE(n, 1u);
      EXPECT_LE(n, 1024u);
      EXPECT_EQ(n & (n - 1), 0u);  // a power of two: the BPF side masks
      if (n > 1) {
        EXPECT_LE(uint64_t{n} * cpus * rec, ring / 16);
        EXPECT_TRUE(n == 1024 || uint64_t{2} * n * cpus * rec > ring / 16);  // the largest that fits
      }
    }
  }
  EXPECT_EQ(wake_batch(8u << 20, 64, rec), 32u);
  EXPECT_EQ(wake_batch(1u << 20, 2, rec), 128u);  // --ringbuf-size 1
  EXPECT_EQ(wake_batch(1u << 20, 8192, rec), 1u);  // more CPUs than the ring holds: wake at every record
  EXPECT_EQ(wake_batch(8u << 20, 0, 0), 1024u);     // nonsense in: still a valid mask
}
