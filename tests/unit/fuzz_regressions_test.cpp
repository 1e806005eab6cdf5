// Every fuzz target (tests/fuzz/targets.h) over its seeds and every input a
// fuzzer once crashed it with (tests/fuzz/regressions/TARGET/), in the ordinary
// build: a kept crash stays fixed. FuzzSeeds.Write regenerates the seeds that
// are not fixtures (BDT_WRITE_SEEDS=1 unit_tests --gtest_filter=FuzzSeeds.Write);
// it is a tool, not a test.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../fuzz/targets.h"
#include "bdt/event.h"
#include "replay/trace_reader.h"
#include "events.h"

namespace fs = std::filesystem;

namespace {

const fs::path kFuzz = fs::path(BDT_FIXTURES_DIR).parent_path() / "fuzz";
const fs::path kFixtures = BDT_FIXTURES_DIR;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<fs::path> files_under(const fs::path& dir) {
  std::vector<fs::path> v;
  if (!fs::is_directory(dir)) return v;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

// The inputs each target is run on: its seeds, its kept crashes, and the
// fixtures that are its kind of input.
std::vector<fs::path> inputs_of(std::string_view target) {
  std::vector<fs::path> v = files_under(kFuzz / "seeds" / target);
  for (auto& p : files_under(kFuzz / "regressions" / target)) v.push_back(p);
  if (target == "jsonl" || target == "record")
    for (const char* d : {"bad", "benign", "seeds"})
      for (auto& p : files_under(kFixtures / d)) v.push_back(p);
  if (target == "qemu_cmdline")
    for (auto& p : files_under(kFixtures / "qemu" / "proc"))
      if (p.filename() == "cmdline") v.push_back(p);
  return v;
}

}  // namespace

TEST(FuzzRegressions, EveryTargetOverItsSeedsAndKeptCrashes) {
  for (const auto& t : bdt::fuzz::kTargets) {
    const auto inputs = inputs_of(t.name);
    EXPECT_FALSE(inputs.empty()) << "no seeds for fuzz target " << t.name;
    for (const auto& p : inputs) {
      SCOPED_TRACE(p.string());
      const std::string b = slurp(p);
      EXPECT_EQ(t.fn(reinterpret_cast<const uint8_t*>(b.data()), b.size()), 0);
    }
  }
}

TEST(FuzzRegressions, KeptCrashesBelongToATarget) {
  std::set<std::string> names;
  for (const auto& t : bdt::fuzz::kTargets) names.insert(std::string(t.name));
  for (const char* d : {"seeds", "regressions"}) {
    if (!fs::is_directory(kFuzz / d)) continue;
    for (const auto& e : fs::directory_iterator(kFuzz / d))
      EXPECT_TRUE(names.count(e.path().filename().string())) << e.path() << " names no fuzz target";
  }
}

// ---- seed writer ----------------------------------------------------------------
namespace {

bdt_raw_event raw_of(uint16_t type) {
  bdt_raw_event r;
  std::memset(&r, 0, sizeof r);
  r.ts_ns = 1'000'000'000ull + type;
  r.pid = 812;
  r.tid = 815;
  std::memcpy(r.comm, "qemu-kvm", 8);
  r.type = type;
  r.phase = type == BDT_EV_GET_EXTENT || type == BDT_EV_EB_FREE ? BDT_PHASE_EXIT : BDT_PHASE_NONE;
  r.source = BDT_SRC_FENTRY;
  r.flags = BDT_F_HAS_DEV | BDT_F_WRITE | BDT_F_DIR_KNOWN;
  for (int i = 0; i < 16; ++i) r.fsid[i] = static_cast<uint8_t>(0x10 + i);
  r.dev = (0ull << 20) | 45;
  r.ino = 257;
  r.u.dio.pos = 4096;
  r.u.dio.count = 65536;
  if (type == BDT_EV_IOCTL_BEGIN || type == BDT_EV_IOCTL_END) {
    std::memset(&r.u, 0, sizeof r.u);
    r.u.ioc.fd = 5;
    r.u.ioc.cmd = BDT_IOC_SEND;
  }
  return r;
}

void write_seed(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

std::string bytes_of(const void* p, size_t n) { return std::string(static_cast<const char*>(p), n); }

}  // namespace

TEST(FuzzSeeds, Write) {
  if (!getenv("BDT_WRITE_SEEDS")) GTEST_SKIP() << "set BDT_WRITE_SEEDS=1 to regenerate the fuzz seeds";
  const fs::path s = kFuzz / "seeds";
  // raw_event: one raw record of every type.
  for (uint16_t t = 1; t < BDT_EV_MAX; ++t) {
    auto r = raw_of(t);
    write_seed(s / "raw_event" / ("type-" + std::to_string(t)), bytes_of(&r, sizeof r));
  }
  // record: the seed timelines as binary records (valid files to mutate).
  for (const auto& p : files_under(kFixtures / "seeds")) {
    if (p.extension() != ".jsonl") continue;
    auto r = bdt::open_trace(p.string());
    const fs::path out = s / "record" / (p.stem().string() + ".bdt");
    fs::create_directories(out.parent_path());
    fs::remove(out);
    auto w = bdt::create_record(out.string(), r->header());
    bdt::Event ev;
    while (r->next(ev)) w->write(ev);
    w->flush();
  }
  // recorder_scan: 2 CPUs x 4 slots, CPU 0 wrapped (seq 5..8), CPU 1 half full.
  {
    std::string b = {1, 3};
    for (uint32_t cpu = 0; cpu < 2; ++cpu)
      for (uint32_t i = 0; i < 4; ++i) {
        bdt_rec_slot slot;
        std::memset(&slot, 0, sizeof slot);
        const uint64_t seq = cpu == 0 ? 5 + i : (i < 2 ? 1 + i : 0);
        slot.seq = slot.seq_end = seq;
        if (seq) slot.ev = raw_of(static_cast<uint16_t>(1 + (seq + cpu) % (BDT_EV_MAX - 1)));
        b += bytes_of(&slot, sizeof slot);
      }
    write_seed(s / "recorder_scan" / "two-cpus", b);
  }
  // qemu_cmdline: the fixture processes' command lines (the fixture directories
  // also hold symlinks into this machine, which a fuzzer must not read).
  for (const auto& d : fs::directory_iterator(kFixtures / "qemu" / "proc"))
    if (fs::is_regular_file(d.path() / "cmdline"))
      write_seed(s / "qemu_cmdline" / d.path().filename(), slurp(d.path() / "cmdline"));
  // procfs: each fixture process's files, sections separated by 0xff.
  const std::string mountinfo =
      "36 35 98:0 / /srv/images rw,noatime shared:1 - btrfs /dev/vdb rw,space_cache=v2\n"
      "22 1 8:1 / / rw - ext4 /dev/root rw\n";
  const std::string kallsyms =
      "ffffffff81000000 T btrfs_get_extent\nffffffff81000100 t iomap_dio_rw.llvm.123\n"
      "ffffffff81000200 t free_extent_buffer.part.0\n";
  for (const auto& d : fs::directory_iterator(kFixtures / "qemu" / "proc")) {
    if (!fs::exists(d.path() / "cmdline")) continue;
    auto rd = [&](const char* f) { return fs::exists(d.path() / f) ? slurp(d.path() / f) : std::string(); };
    auto lnk = [&](const char* f) {
      std::error_code ec;
      auto t = fs::read_symlink(d.path() / f, ec);
      return ec ? std::string() : t.string();
    };
    std::string fdinfo, fdtarget;
    for (const auto& fd : files_under(d.path() / "fdinfo")) {
      fdinfo = slurp(fd);
      std::error_code ec;
      auto t = fs::read_symlink(d.path() / "fd" / fd.filename(), ec);
      if (!ec) fdtarget = t.string();
      break;
    }
    const std::string sep(1, '\xff');
    write_seed(s / "procfs" / d.path().filename(),
               rd("cmdline") + sep + rd("comm") + sep + rd("stat") + sep + lnk("exe") + sep + lnk("cwd") +
                   sep + fdtarget + sep + fdinfo + sep + "CPU 0/KVM\n" + sep + mountinfo + sep + kallsyms);
  }
  // http: requests the endpoint answers and ones it refuses.
  const char* reqs[] = {
      "GET /metrics HTTP/1.1\r\nHost: localhost:9089\r\nAccept: text/plain\r\n\r\n",
      "HEAD / HTTP/1.0\r\n\r\n",
      "GET /metrics?x=1 HTTP/1.1\nHost: h\n\n",
      "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
      "GET /../etc/passwd HTTP/1.1\r\n\r\n",
      "[::1]:9089",
      ":9089",
      "127.0.0.1:9089",
  };
  int i = 0;
  for (const char* r : reqs) write_seed(s / "http" / ("seed-" + std::to_string(i++)), r);
}
