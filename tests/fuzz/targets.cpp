// The fuzz targets (declared and explained in targets.h). Each runs the same
// code the tool runs on that input, through its public or module interface;
// nothing here re-implements a parser.
#include "targets.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/event_json.h"
#include "detectors/engine.h"
#include "live/decode.h"
#include "live/recorder_scan.h"
#include "loader/kallsyms.h"
#include "metrics/http_server.h"
#include "qemu/qemu.h"
#include "replay/trace_reader.h"
#include "sinks/chrome.h"
#include "sinks/sink.h"

namespace bdt::fuzz {

namespace {

// An in-memory file the readers open by path (/proc/self/fd/N), so they run
// exactly as on a file given on the command line.
class MemFile {
 public:
  MemFile() {
    fd_ = ::memfd_create("bdt-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) std::abort();
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  const std::string& put(std::string_view bytes) {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t w = ::pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
      if (w <= 0) std::abort();
      done += static_cast<size_t>(w);
    }
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

std::FILE* devnull() {
  static std::FILE* f = std::fopen("/dev/null", "we");
  if (!f) std::abort();
  return f;
}

// A trace's events through the detectors and every sink, as `replay` does.
void replay(TraceReader& r) {
  DetectorConfig cfg;
  cfg.kernel = r.header().kernel;
  Engine engine(cfg);
  auto text = make_text_sink(devnull(), TimeBase{}, false);
  auto json = make_json_sink(devnull(), r.header());
  auto chrome = make_chrome_sink(devnull(), r.header());
  Sink* sinks[] = {text.get(), json.get(), chrome.get()};
  Findings found;
  Event ev;
  uint64_t last = 0;
  while (r.next(ev)) {
    last = ev.ts_ns;
    for (Sink* s : sinks) s->event(ev);
    engine.feed(ev, found);
    for (const Finding& f : found)
      for (Sink* s : sinks) s->finding(f);
    found.clear();
  }
  engine.finish(last, found);
  for (const Finding& f : found)
    for (Sink* s : sinks) s->finding(f);
  for (Sink* s : sinks) s->flush();
}

void read_file_as_trace(const std::string& path, bool salvage) {
  try {
    auto r = open_trace(path, salvage);
    replay(*r);
  } catch (const InputError&) {
  }
}

live::FlagMaps flag_maps_618() {
  live::FlagMaps fm;
  int i = 0;
  for (const auto& f : ordered_flag_names()) fm.offer("BTRFS_ORDERED_" + std::string(f.name), i++);
  i = 0;
  for (const auto& f : eb_flag_names()) fm.offer("EXTENT_BUFFER_" + std::string(f.name), i++);
  return fm;
}

uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
void put_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0) {
  crc = ~crc;
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
  }
  return ~crc;
}

// docs/record-format.md: magic, version 1, header CRC, every record's CRC
// (lengths clamped to what the bytes hold), over the same layout.
std::string checksummed(std::string b) {
  if (b.size() < 20) b.resize(20);
  static const uint8_t kMagic[8] = {0x89, 'B', 'D', 'T', 'R', 'E', 'C', '\n'};
  std::memcpy(b.data(), kMagic, 8);
  auto* p = reinterpret_cast<uint8_t*>(b.data());
  p[8] = 1;
  p[9] = 0;
  uint32_t h = std::min<uint32_t>(le32(p + 12), static_cast<uint32_t>(b.size() - 20));
  put_le32(p + 12, h);
  put_le32(p + 16 + h, crc32(p, 16 + h));
  for (size_t at = 20 + h; at + 8 <= b.size();) {
    uint32_t len = std::min<uint32_t>(le32(p + at), static_cast<uint32_t>(b.size() - at - 8));
    put_le32(p + at, len);
    put_le32(p + at + 4, crc32(p + at + 8, len, crc32(p + at, 4)));
    at += 8 + len;
  }
  return b;
}

std::vector<std::string_view> split(std::string_view s, char sep, size_t max_parts) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < max_parts) {
    size_t i = s.find(sep);
    if (i == std::string_view::npos) break;
    out.push_back(s.substr(0, i));
    s.remove_prefix(i + 1);
  }
  out.push_back(s);
  return out;
}

std::string_view as_text(const uint8_t* d, size_t n) { return {reinterpret_cast<const char*>(d), n}; }

// A private directory for the fake /proc, removed at exit.
std::string g_proc_root;
void remove_proc_root() {
  std::error_code ec;
  std::filesystem::remove_all(g_proc_root, ec);
}
const std::string& fake_proc_root() {
  if (g_proc_root.empty()) {
    char tmpl[] = "/tmp/bdt-fuzz-proc-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    g_proc_root = tmpl;
    for (const char* d : {"/4242", "/4242/fd", "/4242/fdinfo", "/4242/task", "/4242/task/4243"})
      ::mkdir((g_proc_root + d).c_str(), 0700);
    std::atexit(remove_proc_root);
  }
  return g_proc_root;
}

}  // namespace

int jsonl(const uint8_t* data, size_t size) {
  static MemFile file;
  const std::string& path = file.put(as_text(data, size));
  read_file_as_trace(path, false);
  read_file_as_trace(path, true);
  return 0;
}

int record(const uint8_t* data, size_t size) {
  static MemFile file;
  static const uint8_t kMagic[8] = {0x89, 'B', 'D', 'T', 'R', 'E', 'C', '\n'};
  std::string b(as_text(data, size));
  if (size < 8 || std::memcmp(data, kMagic, 8) != 0) b = checksummed(std::move(b));
  const std::string& path = file.put(b);
  read_file_as_trace(path, false);
  read_file_as_trace(path, true);
  return 0;
}

int recorder_scan(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint32_t ncpus = 1 + data[0] % 4, per_cpu = 1 + data[1] % 16;
  const size_t stride = sizeof(bdt_rec_slot);
  std::vector<uint8_t> mem(ncpus * per_cpu * stride);
  std::memcpy(mem.data(), data + 2, std::min(mem.size(), size - 2));
  static const live::FlagMaps fm = flag_maps_618();
  // the instance the first slot names: the others are read against it
  uint64_t instance = 0;
  std::memcpy(&instance, mem.data() + offsetof(bdt_rec_slot, instance), sizeof instance);
  auto scan = live::scan_slots(mem.data(), stride, ncpus, per_cpu, instance);
  std::string out;
  Event ev;
  for (const auto& r : scan.records)
    if (live::decode_raw(r.ev, fm, ev)) {
      out.clear();
      append_event_json(out, ev);
      append_event_details(out, ev);
    }
  return 0;
}

// One event of every type with every field set (decoded from a record of
// 0xff bytes, stack id included; vm/image added): what a reused slot may hold.
const std::vector<Event>& dirty_slots(const live::FlagMaps& fm) {
  static const std::vector<Event> v = [&] {
    std::vector<Event> out;
    for (int t = 1; t <= kEventTypeCount; ++t) {
      bdt_raw_event r;
      std::memset(&r, 0xff, sizeof r);
      r.type = static_cast<uint16_t>(t);
      r.phase = BDT_PHASE_EXIT;
      Event e;
      if (!live::decode_raw(r, fm, e)) std::abort();
      e.vm = "dirty-vm";
      e.image = "/dirty/image";
      out.push_back(e);
    }
    return out;
  }();
  return v;
}

int raw_event(const uint8_t* data, size_t size) {
  static const live::FlagMaps fm = flag_maps_618();
  // The live window decodes into reused slots (live/reorder.h): decoded over
  // whatever the previous record left, or over an event of any type with every
  // field set, each record must give exactly its decode into a fresh event.
  Event reused;
  const std::vector<Event>& dirty = dirty_slots(fm);
  // --record files are created new (O_EXCL): a fresh name in a private dir.
  static const std::string rec = fake_proc_root() + "/out.bdt";
  ::unlink(rec.c_str());
  std::vector<Event> events;
  for (size_t at = 0; at < size; at += sizeof(bdt_raw_event)) {
    bdt_raw_event r{};
    std::memcpy(&r, data + at, std::min(sizeof r, size - at));
    Event ev;
    if (!live::decode_raw(r, fm, ev)) continue;
    auto over = [&](Event& slot, const char* what) {
      if (live::decode_raw(r, fm, slot) && slot == ev) return;
      std::fprintf(stderr, "a %s record decoded over %s differs from its fresh decode\n",
                   std::string(to_string(ev.type)).c_str(), what);
      std::abort();
    };
    for (const Event& d : dirty) {
      Event slot = d;
      over(slot, "an event with every field set");
    }
    over(reused, "the previous record's event");
    std::string json, text;
    append_event_json(json, ev);
    append_event_details(text, ev);
    // What the tool writes, it reads back; but for a byte range past 2^64,
    // which no kernel reports and the readers refuse as corrupt (wrapping_range).
    if (!wrapping_range(ev).empty()) continue;
    Event back;
    StringTable strings;
    try {
      event_from_json(json, back, strings);
    } catch (const InputError& e) {
      std::fprintf(stderr, "own JSON does not read back: %s\n%s\n", e.what(), json.c_str());
      std::abort();
    }
    ev.ts_ns = events.size();  // records must be in time order
    events.push_back(ev);
  }
  {
    auto w = create_record(rec, TraceHeader{});
    for (const Event& e : events) w->write(e);
  }
  try {
    auto r = open_trace(rec);
    Event ev;
    size_t n = 0;
    while (r->next(ev)) ++n;
    if (n != events.size()) std::abort();
  } catch (const InputError& e) {
    std::fprintf(stderr, "own record does not read back: %s\n", e.what());
    std::abort();
  }
  return 0;
}

int qemu_cmdline(const uint8_t* data, size_t size) {
  std::vector<std::string> argv;
  for (std::string_view a : split(as_text(data, size), '\0', SIZE_MAX)) argv.emplace_back(a);
  auto cl = qemu::parse_command_line(argv);
  for (const auto& a : argv) qemu::parse_opts(a, "guest");
  (void)cl;
  return 0;
}

int procfs(const uint8_t* data, size_t size) {
  // A fake /proc with one process, 4242, written from the input's sections.
  static const std::string& root = fake_proc_root();
  auto parts = split(as_text(data, size), '\xff', 10);
  parts.resize(10);
  auto write = [&](const std::string& rel, std::string_view s) {
    std::FILE* f = std::fopen((root + rel).c_str(), "we");
    if (!f) std::abort();
    std::fwrite(s.data(), 1, s.size(), f);
    std::fclose(f);
  };
  auto link = [&](const std::string& rel, std::string_view target) {
    const std::string p = root + rel;
    ::unlink(p.c_str());
    std::string t(target.substr(0, target.find('\0')));
    if (!t.empty()) (void)::symlink(t.c_str(), p.c_str());
  };
  write("/4242/cmdline", parts[0]);
  write("/4242/comm", parts[1]);
  write("/4242/stat", parts[2]);
  link("/4242/exe", parts[3]);
  link("/4242/cwd", parts[4]);
  link("/4242/fd/3", parts[5]);
  write("/4242/fdinfo/3", parts[6]);
  write("/4242/task/4243/comm", parts[7]);

  qemu::DiscoverOptions opts;
  opts.proc_root = root;
  opts.stat = [](const std::string& path) {
    qemu::FileId id;
    id.ok = true;
    id.regular = path.size() % 3 != 0;
    id.dev = 45;
    id.ino = std::hash<std::string>{}(path) % 7;
    id.fs_magic = 0x9123683E;  // btrfs
    return id;
  };
  auto vms = qemu::discover(opts);
  (void)qemu::describe(vms);
  try {
    auto p = qemu::inspect(4242, opts);
    (void)qemu::describe(std::vector<qemu::QemuProcess>{p});
  } catch (const InputError&) {
  }

  auto mounts = live::parse_mountinfo(parts[8]);
  (void)live::find_mount(mounts, "/srv/images/a.raw");
  (void)live::find_mount(mounts, "/srv/images/a.raw", 42);
  (void)loader::kallsyms_resolve_text(std::string(parts[9]),
                                      {"btrfs_get_extent", "iomap_dio_rw", "free_extent_buffer"});
  return 0;
}

int http(const uint8_t* data, size_t size) {
  const std::string_view s = as_text(data, size);
  auto r = metrics::parse_request(s, 8192);
  if (r.state == metrics::Request::State::Ok) {
    auto resp = metrics::respond(r, "# TYPE x counter\nx 1\n", "<html></html>");
    (void)metrics::serialize(resp);
  }
  try {
    (void)metrics::parse_listen_address(s);
  } catch (const InputError&) {
  }
  return 0;
}

}  // namespace bdt::fuzz
