// The flight recorder's slot reader and the pinned maps' shape check
// (src/live/recorder_scan.h): the pure part of `dump --pin-dir`, fed slot
// arrays built the way bpf/emission.bpf.h writes them and map shapes.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "replay/trace_reader.h"

#include "sinks/sink.h"
#include "fake_recorder.h"
#include "live/recorder_scan.h"

using namespace bdt;
using namespace bdt::live;
using bdt::testing::FakeRecorder;

namespace {

SlotScan scan(const bdt::testing::FakeRecorder& r) {
  return scan_slots(r.bytes(), sizeof(bdt_rec_slot), r.ncpus, r.slots, r.instance);
}

TEST(RecorderScan, EmptyRecorderHasNoRecords) {
  FakeRecorder r(2, 8);
  auto s = scan(r);
  EXPECT_TRUE(s.records.empty());
  EXPECT_EQ(s.empty, 16u);
  EXPECT_EQ(s.torn, 0u);
}

TEST(RecorderScan, MergesCpusByTime) {
  FakeRecorder r(2, 8);
  r.write(0, 100, 1);
  r.write(1, 50, 2);
  r.write(0, 300, 3);
  r.write(1, 200, 4);
  r.write(1, 300, 5);  // same ts as cpu 0's: cpu order breaks the tie
  auto s = scan(r);
  ASSERT_EQ(s.records.size(), 5u);
  std::vector<uint32_t> tids;
  for (auto& x : s.records) tids.push_back(x.ev.tid);
  EXPECT_EQ(tids, (std::vector<uint32_t>{2, 1, 4, 3, 5}));
  EXPECT_EQ(s.kept_per_cpu, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(s.newest_per_cpu, (std::vector<uint64_t>{2, 3}));
}

TEST(RecorderScan, WrapKeepsExactlyTheNewest) {
  FakeRecorder r(1, 4);
  for (uint32_t i = 1; i <= 10; ++i) r.write(0, i * 10, i);
  auto s = scan(r);
  ASSERT_EQ(s.records.size(), 4u);
  for (size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(s.records[k].ev.tid, 7 + k);  // 7, 8, 9, 10: the newest, in order
    EXPECT_EQ(s.records[k].seq, 7 + k);
  }
  EXPECT_EQ(s.kept_per_cpu[0], 4u);
  EXPECT_EQ(s.newest_per_cpu[0], 10u);
}

TEST(RecorderScan, TornSlotsAreDropped) {
  FakeRecorder r(1, 4);
  for (uint32_t i = 1; i <= 4; ++i) r.write(0, i * 10, i);
  // A writer reserved the slot of seq 1 again (seq 5) and is half-way: seq_end
  // is new, seq still old.
  r.reserve(0, 50, 5);
  auto s = scan(r);
  EXPECT_EQ(s.torn, 1u);
  ASSERT_EQ(s.records.size(), 3u);
  // Its sequence numbers made to agree without a check of the new record
  // (the check is still the old record's): dropped as damaged, not read.
  r.mem[0].seq = r.mem[0].seq_end;
  s = scan(r);
  EXPECT_EQ(s.damaged, 1u);
  EXPECT_EQ(s.records.size(), 3u);
  EXPECT_EQ(s.records.front().ev.tid, 2u);
  // Finished: all four valid again, the oldest gone.
  FakeRecorder::submit(r.mem[0]);
  s = scan(r);
  EXPECT_EQ(s.torn, 0u);
  ASSERT_EQ(s.records.size(), 4u);
  EXPECT_EQ(s.records.back().ev.tid, 5u);
  EXPECT_EQ(s.records.front().ev.tid, 2u);
}

TEST(RecorderScan, SlotInTheWrongPositionIsRejected) {
  FakeRecorder r(1, 4);
  r.write(0, 10, 1);
  r.mem[2] = r.mem[0];  // seq 1 cannot live in position 2
  auto s = scan(r);
  EXPECT_EQ(s.records.size(), 1u);
  EXPECT_EQ(s.damaged, 1u);
}

TEST(RecorderScan, ABitFlipAnywhereInASlotDropsIt) {
  // Every bit of the header and the record (seq/seq_end: torn; the rest:
  // the check fails), never a misread record.
  for (size_t byte = 0; byte < offsetof(bdt_rec_slot, reserved); ++byte)
    for (int bit = 0; bit < 8; bit += 3) {
      FakeRecorder r(1, 4);
      for (uint32_t i = 1; i <= 3; ++i) r.write(0, i * 10, i);
      reinterpret_cast<uint8_t*>(&r.mem[1])[byte] ^= static_cast<uint8_t>(1u << bit);
      auto s = scan(r);
      ASSERT_EQ(s.records.size(), 2u) << "byte " << byte << " bit " << bit;
      EXPECT_EQ(s.torn + s.damaged, 1u) << "byte " << byte;
      for (auto& x : s.records) EXPECT_NE(x.ev.tid, 2u);
    }
}

TEST(RecorderScan, AnotherInstancesSlotIsNotRead) {
  FakeRecorder r(1, 4), other(1, 4, 0x77);
  r.write(0, 10, 1);
  other.write(0, 20, 2);
  other.write(0, 30, 3);
  r.mem[1] = other.mem[1];  // seq 2 of another recorder, in the right position
  auto s = scan(r);
  ASSERT_EQ(s.records.size(), 1u);
  EXPECT_EQ(s.records[0].ev.tid, 1u);
  EXPECT_EQ(s.damaged, 1u);
}

TEST(RecorderScan, NestedWriterOnOneCpuGetsItsOwnSlot) {
  // An irq-time program nests inside another on the same CPU: the outer one
  // reserved first, the inner one finished first; both survive, time-ordered.
  FakeRecorder r(1, 8);
  auto& outer = r.reserve(0, 100, 1);
  r.write(0, 105, 2);
  EXPECT_EQ(scan(r).records.size(), 1u);  // outer still being written
  FakeRecorder::submit(outer);
  auto s = scan(r);
  ASSERT_EQ(s.records.size(), 2u);
  EXPECT_EQ(s.records[0].ev.tid, 1u);
  EXPECT_EQ(s.records[1].ev.tid, 2u);
}

TEST(RecorderScan, WallClockConversion) {
  // 2026-11-22T04:50:01.123456789Z = 1795323001.123456789 s since the epoch
  const int64_t rt = 1795323001'123456789;
  const uint64_t mono = 5'000'000'000;
  const int64_t off = rt - static_cast<int64_t>(mono);
  EXPECT_EQ(wall_ns(mono, off), rt);
  EXPECT_EQ(wall_ns(mono + 1'500'000, off), rt + 1'500'000);
  EXPECT_EQ(format_wall_utc(rt), "2026-11-22T04:50:01.123456Z");
  EXPECT_EQ(format_wall_utc(0), "1970-01-01T00:00:00.000000Z");
  // A trace file may carry any time and offset: clamped, not overflowed.
  EXPECT_EQ(wall_ns(UINT64_MAX, INT64_MAX), INT64_MAX);
  EXPECT_EQ(wall_ns(7959393480645825512ull, 1763776000000000000), INT64_MAX);
  EXPECT_EQ(wall_ns(0, INT64_MIN), INT64_MIN);
  EXPECT_EQ(wall_ns(UINT64_MAX, INT64_MIN), static_cast<int64_t>(UINT64_MAX / 2));
}

// dump --pin-dir --format json: every event line gets wall_ns / wall_time, and
// replay still reads such a file (by ts_ns).
TEST(RecorderScan, JsonWallClockFieldsAndReplayReadsThem) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  const int64_t off = 1795323001'123456789 - 5'000'000'000;
  {
    TraceHeader h;
    h.mono_to_realtime_ns = off;
    auto sink = make_json_sink(f, h, true);
    Event ev;
    ev.type = EventType::DioBegin;
    ev.ts_ns = 5'000'000'000;
    ev.pid = ev.tid = 7;
    sink->event(ev);
    sink->flush();
  }
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  EXPECT_NE(out.find("\"wall_ns\":1795323001123456789,\"wall_time\":\"2026-11-22T04:50:01.123456Z\"}"),
            std::string::npos)
      << out;
  const std::string path = ::testing::TempDir() + "/bdt-wall.jsonl";
  std::ofstream(path) << out;
  auto r = open_trace(path);
  Event back;
  ASSERT_TRUE(r->next(back));
  EXPECT_EQ(back.ts_ns, 5'000'000'000u);
  EXPECT_EQ(back.type, EventType::DioBegin);
  std::remove(path.c_str());
}

}  // namespace

// The shape check every pinned map passes before `dump --pin-dir` or `status`
// reads it (flight_recorder.cpp feeds it bpf_obj_get_info_by_fd's answer).
TEST(PinnedMapShape, ThisBuildsShapesPass) {
  for (const char* name : {"rec_meta", "recorder", "rec_head", "lost"}) {
    const MapShape* want = pinned_map_shape(name);
    ASSERT_NE(want, nullptr) << name;
    EXPECT_EQ(map_shape_problem(name, *want, *want), "") << name;
  }
  EXPECT_EQ(pinned_map_shape("stacks"), nullptr);  // pinned, never read
  EXPECT_EQ(pinned_map_shape("link-00"), nullptr);
  const MapShape meta = *pinned_map_shape("rec_meta");
  EXPECT_EQ(meta.value_size, sizeof(bdt_rec_meta));
  EXPECT_EQ(pinned_map_shape("recorder")->value_size, sizeof(bdt_rec_slot));
  EXPECT_EQ(pinned_map_shape("lost")->value_size, sizeof(uint64_t));
  // A recorder of 2 CPUs x 4096 slots: more entries and more flags are fine
  // (the entries are checked against the meta afterwards).
  MapShape rec = *pinned_map_shape("recorder");
  rec.max_entries = 8192;
  rec.flags |= 0x1;  // BPF_F_NO_PREALLOC
  EXPECT_EQ(map_shape_problem("recorder", rec, *pinned_map_shape("recorder")), "");
}

TEST(PinnedMapShape, EachDifferenceIsRefusedSayingFoundAndExpected) {
  const MapShape want = *pinned_map_shape("rec_meta");
  auto problem = [&](MapShape found) { return map_shape_problem("rec_meta", found, want); };
  const std::string expects = fmt::format("this btrfs-dio-trace expects type 2, 4-byte keys, {}-byte values",
                                          sizeof(bdt_rec_meta));
  MapShape small = want;
  small.value_size = 8;  // reading the struct from it would read past the value
  EXPECT_EQ(problem(small), "map rec_meta: type 2, 4-byte keys, 8-byte values, 1 entries; " + expects +
                                ": dump it with the btrfs-dio-trace build that pinned it, or release it");
  MapShape large = want;
  large.value_size = want.value_size + 4096;  // the lookup would overflow the struct
  EXPECT_NE(problem(large).find(fmt::format("{}-byte values", want.value_size + 4096)), std::string::npos);
  MapShape hash = want;
  hash.type = 1;  // BPF_MAP_TYPE_HASH
  EXPECT_EQ(problem(hash).rfind("map rec_meta: type 1, 4-byte keys", 0), 0u) << problem(hash);
  MapShape key8 = want;
  key8.key_size = 8;
  EXPECT_NE(problem(key8).find("8-byte keys"), std::string::npos);
  MapShape empty = want;
  empty.max_entries = 0;
  EXPECT_NE(problem(empty).find(", 0 entries;"), std::string::npos);
  // The recorder must be mmapable (dump maps it in place).
  MapShape rec = *pinned_map_shape("recorder");
  const MapShape rec_want = rec;
  rec.flags = 0;
  rec.max_entries = 2;
  EXPECT_EQ(map_shape_problem("recorder", rec, rec_want),
            fmt::format("map recorder: type 2, 4-byte keys, {0}-byte values, 2 entries; this btrfs-dio-trace "
                        "expects type 2, 4-byte keys, {0}-byte values, mmapable: dump it with the "
                        "btrfs-dio-trace build that pinned it, or release it",
                        sizeof(bdt_rec_slot)));
  // A per-CPU counter of another value size (the kernel writes value size x
  // possible CPUs into the reader's buffer).
  MapShape lost = *pinned_map_shape("lost");
  lost.value_size = 64;
  EXPECT_NE(map_shape_problem("lost", lost, *pinned_map_shape("lost")).find("64-byte values"), std::string::npos);
}

TEST(PinnedMapShape, TypeNamesComeFromTheGivenNamer) {
  const MapShape want = *pinned_map_shape("rec_head");
  MapShape found = want;
  found.type = 2;
  auto namer = [](uint32_t t) -> const char* { return t == 2 ? "array" : t == 6 ? "percpu_array" : nullptr; };
  EXPECT_EQ(map_shape_problem("rec_head", found, want, namer).rfind(
                "map rec_head: type array, 4-byte keys, 8-byte values, 1 entries; this btrfs-dio-trace expects "
                "type percpu_array,",
                0),
            0u);
  found.type = 4242;  // unknown to the namer: its number
  EXPECT_NE(map_shape_problem("rec_head", found, want, namer).find("type 4242,"), std::string::npos);
}
