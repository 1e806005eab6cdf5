// sd_notify and the journal: see service.h.
#include "cli/service.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>

#include "core/event_json.h"

namespace bdt::cli::service {

namespace {

// Identifies "a btrfs-dio-trace finding" in the journal (journalctl MESSAGE_ID=...),
// as systemd's catalog entries do. Fixed forever.
constexpr const char* kFindingMessageId = "6f1c2b7e0a8d4c39b5e2d17a9c3f4e21";

int priority(Severity s) {
  switch (s) {
    case Severity::Critical: return 2;  // LOG_CRIT
    case Severity::Warning: return 4;   // LOG_WARNING
    case Severity::Info: return 6;      // LOG_INFO
  }
  return 6;
}

// Journal values are bytes; the one-line fields must not carry a newline.
std::string one_line(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  return out;
}

class JournalSink final : public Sink {
 public:
  JournalSink(std::unique_ptr<Sink> inner, int64_t off) : inner_(std::move(inner)), off_(off) {}
  void event(const Event& ev) override { inner_->event(ev); }
  void finding(const Finding& f) override {
    const auto fields = journal_fields(f, off_);
    std::vector<iovec> iov;
    iov.reserve(fields.size());
    for (const auto& s : fields) iov.push_back({const_cast<char*>(s.data()), s.size()});
    const int rc = sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
    if (rc < 0) {
      if (!said_) fmt::print(stderr, "btrfs-dio-trace: warning: the journal refused a finding ({}): findings go to "
                                     "stdout instead\n", std::strerror(-rc));
      said_ = true;
      inner_->finding(f);
    }
  }
  void lost(uint32_t cpu, uint64_t n) override { inner_->lost(cpu, n); }
  void summary(const Summary& s) override { inner_->summary(s); }
  void flush() override { inner_->flush(); }

 private:
  std::unique_ptr<Sink> inner_;
  int64_t off_;
  bool said_ = false;
};

}  // namespace

bool stdout_is_journal() {
  const char* e = std::getenv("JOURNAL_STREAM");
  if (!e) return false;
  struct stat st {};
  if (fstat(STDOUT_FILENO, &st) != 0) return false;
  return fmt::format("{}:{}", static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)) == e;
}

void notify_ready(const std::string& status) { sd_notifyf(0, "READY=1\nSTATUS=%s", one_line(status).c_str()); }
void notify_status(const std::string& status) { sd_notifyf(0, "STATUS=%s", one_line(status).c_str()); }
void notify_stopping() { sd_notify(0, "STOPPING=1\nSTATUS=stopping"); }

Watchdog::Watchdog() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) interval_ns_ = usec * 1000;
}

void Watchdog::tick(uint64_t now_ns) {
  if (!interval_ns_ || now_ns < last_ns_ + interval_ns_ / 2) return;
  last_ns_ = now_ns;
  sd_notify(0, "WATCHDOG=1");
}

std::vector<std::string> journal_fields(const Finding& f, int64_t off) {
  std::vector<std::string> v;
  std::string where = fmt::format("{}[{}/{}]", f.comm, f.pid, f.tid);
  if (f.ino) where += fmt::format(" ino={}", *f.ino);
  if (f.range) where += fmt::format(" range=[{}, {})", f.range->first, f.range->second);
  if (!f.vm.empty()) where += fmt::format(" vm={}", f.vm);
  v.push_back(fmt::format("MESSAGE={} {} {}: {} ({})", f.level == Level::Symptom ? "SYMPTOM" : "HAZARD",
                          to_string(f.severity), f.detector, one_line(f.message), one_line(where)));
  v.push_back(fmt::format("PRIORITY={}", priority(f.severity)));
  v.push_back(fmt::format("MESSAGE_ID={}", kFindingMessageId));
  v.push_back("SYSLOG_IDENTIFIER=btrfs-dio-trace");
  v.push_back("DETECTOR=" + f.detector);
  v.push_back("KIND=" + f.kind);
  v.push_back(fmt::format("LEVEL={}", to_string(f.level)));
  v.push_back(fmt::format("SEVERITY={}", to_string(f.severity)));
  v.push_back("COMM=" + one_line(f.comm));
  v.push_back(fmt::format("TRACED_PID={}", f.pid));
  v.push_back(fmt::format("TRACED_TID={}", f.tid));
  if (!f.fs.empty()) v.push_back("FS=" + f.fs.str());
  if (f.dev) v.push_back("DEV=" + format_dev(*f.dev));
  if (f.ino) v.push_back(fmt::format("INODE={}", *f.ino));
  if (f.range) {
    v.push_back(fmt::format("RANGE_START={}", f.range->first));
    v.push_back(fmt::format("RANGE_END={}", f.range->second));
  }
  if (!f.vm.empty()) v.push_back("VM=" + one_line(f.vm));
  if (!f.image.empty()) v.push_back("IMAGE=" + one_line(f.image));
  v.push_back(fmt::format("TS_NS={}", f.ts_ns));
  if (off) v.push_back("WALL_TIME=" + format_wall_utc(static_cast<int64_t>(f.ts_ns) + off));
  std::string json;
  append_finding_json(json, f, off);
  v.push_back("FINDING_JSON=" + json);
  return v;
}

std::unique_ptr<Sink> journal_findings(std::unique_ptr<Sink> inner, int64_t mono_to_realtime_ns) {
  return std::make_unique<JournalSink>(std::move(inner), mono_to_realtime_ns);
}

}  // namespace bdt::cli::service
