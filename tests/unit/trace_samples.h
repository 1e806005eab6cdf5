// Test helpers for the serialization tests: one distinctive event of every
// type, random events, a sample finding, and a field-by-field comparison that does not go
// through any encoder (so an encoder that drops a field cannot hide it).
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "bdt/event.h"
#include "bdt/event_fields.h"
#include "bdt/finding.h"
#include "replay/trace_reader.h"

namespace bdt::testing_samples {

inline Fsid test_fsid(uint8_t seed = 0x10) {
  Fsid f;
  for (size_t i = 0; i < f.b.size(); ++i) f.b[i] = static_cast<uint8_t>(seed + i * 7);
  return f;
}

inline Event base_event(EventType t, uint64_t ts) {
  Event e;
  e.type = t;
  e.ts_ns = ts;
  e.pid = 4242;
  e.tid = 4243;
  e.set_comm("qemu-kvm");
  e.fs = test_fsid();
  e.dev = 0x2d;
  e.ino = 257;
  return e;
}

// A finding with the fields the JSON tests check set (FindingJson.Contract, the
// golden files); callers set ts_ns, explanation and evidence.
inline Finding sample_finding() {
  Finding f;
  f.detector = "dio-short-write";
  f.kind = "acked-hole";
  f.level = Level::Symptom;
  f.severity = Severity::Critical;
  f.pid = 10;
  f.tid = 11;
  f.comm = "fio";
  f.fs = test_fsid();
  f.dev = 45;
  f.ino = 257;
  f.range = {{4096, 8192}};
  f.message = "Bytes 4096-8192 were acknowledged but \"not\" written.";
  f.exposure = "fixed in 6.x";
  f.actors = {{10, 11, "fio", "writer"}, {10, 12, "kworker/u8:1", "worker"}};
  f.vm = "guest";
  return f;
}

// One event of every EventType, timestamps increasing, every field non-default.
inline std::vector<Event> one_of_each() {
  std::vector<Event> v;
  uint64_t ts = 1'000'000'000;
  auto add = [&](EventType t, Payload p) {
    Event e = base_event(t, ts += 1000);
    e.body = std::move(p);
    v.push_back(e);
  };
  add(EventType::DioBegin, DioBegin{4096, 1 << 20, 8192, true, true, true, true, 0x2e, 258,
                                    12288, 0x7f0000001000, true, true});
  add(EventType::DioEnd, DioEnd{4096, -17, -17, true});
  add(EventType::GetExtent, GetExtent{Phase::Enter, 0, 16384, 0, 0, 0, 0});
  add(EventType::GetExtent, GetExtent{Phase::Exit, 0, 16384, 4096, 8192, 13631488, -17});
  add(EventType::EmAdd, EmAdd{0, 4096, 13631488, -17});
  add(EventType::EmExist, EmExist{0, 16384, 4096, 4096, 8192, 4096});
  uint32_t oflags = oef::DIRECT | oef::IOERR | oef::COMPLETE;
  add(EventType::OeAdd, Ordered{4096, 8192, oef::DIRECT | oef::REGULAR, true});
  add(EventType::OeSplit, Ordered{4096, 4096, oef::DIRECT, true});
  add(EventType::OeStart, Ordered{4096, 4096, oef::DIRECT | oef::PENDING, true});
  add(EventType::OeMarkFinished, Ordered{4096, 4096, oflags, false});
  add(EventType::OeFinish, Ordered{4096, 4096, oflags, false});
  add(EventType::OeRemove, Ordered{4096, 4096, oflags | oef::ENCODED | oef::LOGGED_CSUM, false});
  add(EventType::EbFree, ExtentBuffer{Phase::Enter, 30408704, 1,
                                      ebf::STALE | ebf::TREE_REF | ebf::DIRTY, 0xffff8880deadbeef});
  add(EventType::EbFind, ExtentBuffer{Phase::None, 30408704, 2, ebf::STALE | ebf::UPTODATE,
                                      0xffff8880deadbeef});
  add(EventType::EbRelease, ExtentBuffer{Phase::Exit, 30408704, -1,
                                         ebf::WRITEBACK | ebf::NO_CHECK, 0xffff8880deadbeef});
  add(EventType::IoctlBegin, Ioctl{5, IoctlCmd::Send, 0});
  add(EventType::IoctlEnd, Ioctl{6, IoctlCmd::BalanceV2, -11});
  add(EventType::RelocBegin, Reloc{22020096, 0});
  add(EventType::RelocEnd, Reloc{22020096, -28});
  add(EventType::CsumError, CsumError{8192, 4096, 2});
  add(EventType::DioFallback, DioFallback{8192, 65536, 7, FallbackVia::IoUring, true, true, true});
  // vm/image attribution on one of them (views into static strings).
  v[0].vm = "guest-01";
  v[0].image = "/var/lib/libvirt/images/guest-01.raw";
  return v;
}

inline std::string random_ascii(std::mt19937_64& rng, size_t max_len) {
  static const char kChars[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_/.:\"\\";
  size_t n = rng() % (max_len + 1);
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(kChars[rng() % (sizeof kChars - 1)]);
  return s;
}

// A random event of the given type; `strings` keeps vm/image alive.
inline Event random_event(std::mt19937_64& rng, EventType t, uint64_t ts,
                          std::deque<std::string>& strings) {
  auto u64 = [&] {
    switch (rng() % 4) {
      case 0: return uint64_t(0);
      case 1: return ~uint64_t(0);
      case 2: return rng() % 100000;
      default: return rng();
    }
  };
  auto i64 = [&] { return static_cast<int64_t>(u64()); };
  auto i32 = [&] { return static_cast<int32_t>(u64()); };
  auto b = [&] { return (rng() & 1) != 0; };
  Event e;
  e.type = t;
  e.ts_ns = ts;
  e.pid = static_cast<uint32_t>(u64());
  e.tid = static_cast<uint32_t>(u64());
  e.set_comm(random_ascii(rng, 15));
  for (auto& x : e.fs.b) x = static_cast<uint8_t>(rng());
  e.dev = u64();
  e.ino = u64();
  if (rng() % 3 == 0) {
    strings.push_back(random_ascii(rng, 20));
    e.vm = strings.back();
    strings.push_back("/img/" + random_ascii(rng, 40));
    e.image = strings.back();
  }
  uint32_t ofl = static_cast<uint32_t>(rng()) & ((1u << 13) - 1);
  uint32_t ebfl = static_cast<uint32_t>(rng()) & ((1u << 14) - 1);
  switch (t) {
    case EventType::DioBegin:
      e.body = DioBegin{u64(), u64(), u64(), b(), b(), b(), b(), u64(), u64(), u64(), u64(), b(),
                        b()};
      break;
    case EventType::DioEnd: {
      DioEnd d{u64(), i64(), i32(), std::nullopt};
      if (rng() % 3) d.write = b();
      e.body = d;
      break;
    }
    case EventType::GetExtent: {
      GetExtent g;
      g.phase = b() ? Phase::Enter : Phase::Exit;
      g.start = u64();
      g.len = u64();
      if (g.phase == Phase::Exit) {  // enter carries no result fields
        g.em_start = u64();
        g.em_len = u64();
        g.block_start = u64();
        g.ret = i64();
      }
      e.body = g;
      break;
    }
    case EventType::EmAdd: e.body = EmAdd{u64(), u64(), u64(), i64()}; break;
    case EventType::EmExist: e.body = EmExist{u64(), u64(), u64(), u64(), u64(), u64()}; break;
    case EventType::OeAdd:
    case EventType::OeSplit:
    case EventType::OeStart:
    case EventType::OeMarkFinished:
    case EventType::OeFinish:
    case EventType::OeRemove: e.body = Ordered{u64(), u64(), ofl, b()}; break;
    case EventType::EbFree:
    case EventType::EbFind:
    case EventType::EbRelease:
      e.body = ExtentBuffer{static_cast<Phase>(rng() % 3), u64(), i32(), ebfl, u64()};
      break;
    case EventType::IoctlBegin:
    case EventType::IoctlEnd:
      e.body = Ioctl{i32(), static_cast<IoctlCmd>(rng() % 7), i64()};
      break;
    case EventType::RelocBegin:
    case EventType::RelocEnd: e.body = Reloc{u64(), i64()}; break;
    case EventType::CsumError:
      e.body = CsumError{u64(), u64(), static_cast<uint32_t>(u64())};
      break;
    case EventType::DioFallback:
      e.body = DioFallback{u64(), u64(), i32(), static_cast<FallbackVia>(rng() % 4), b(), b(), b()};
      break;
  }
  return e;
}

// random_event() with each byte range cut to end at 2^64 at most: an event the
// decoders accept (bdt::wrapping_range), for round trips through them.
inline Event random_decodable_event(std::mt19937_64& rng, EventType t, uint64_t ts,
                                    std::deque<std::string>& strings) {
  Event e = random_event(rng, t, ts, strings);
  std::visit(
      [](auto& p) {
        for_each_range(p, [](uint64_t& start, uint64_t& len, std::string_view) {
          len = std::min(len, UINT64_MAX - start);
        });
      },
      e.body);
  return e;
}

// Field-by-field equality, naming every differing field: the fixed head
// (each member of Event, counted at compile time) and the payload's fields as
// its list in bdt/event_fields.h names them (not through any encoder, so an
// encoder or a decoder that drops a field cannot hide it).
inline ::testing::AssertionResult same_event(const Event& a, const Event& b) {
  static_assert(fields::detail::aggregate_members<Event>() == 12,
                "a member was added to Event: compare it here");
  std::ostringstream d;
#define BDT_CMP(x)                                                       \
  if (!(a.x == b.x)) d << " " #x;
  BDT_CMP(ts_ns) BDT_CMP(pid) BDT_CMP(tid) BDT_CMP(comm) BDT_CMP(type) BDT_CMP(fs)
  BDT_CMP(dev) BDT_CMP(ino) BDT_CMP(vm) BDT_CMP(image) BDT_CMP(stack_id)
#undef BDT_CMP
  if (a.body.index() != b.body.index()) {
    d << " body-kind";
  } else {
    std::visit(
        [&](const auto& x) {
          using P = std::remove_cvref_t<decltype(x)>;
          const P& y = std::get<P>(b.body);
          fields::for_each<P>([&](const auto& f) {
            if (!(f.ref(x) == f.ref(y))) d << " " << to_string(a.type) << "." << f.name;
          });
        },
        a.body);
  }
  if (d.str().empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "events differ in:" << d.str() << " (type "
                                       << to_string(a.type) << ", ts " << a.ts_ns << ")";
}

inline std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "bdt-d1-" + std::to_string(::getpid()) + "-" + name;
}

// Every event a reader yields.
inline std::vector<Event> read_all(TraceReader& r) {
  std::vector<Event> v;
  Event e;
  while (r.next(e)) v.push_back(e);
  return v;
}

// The InputError message of reading the whole file, or "" if it read cleanly.
inline std::string read_error(const std::string& path, bool salvage = false) {
  try {
    auto r = open_trace(path, salvage);
    read_all(*r);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

inline void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace bdt::testing_samples
