// Anomaly snapshots: see snapshot.h and docs/timeline.md.
#include "sinks/snapshot.h"

#include <fmt/format.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/event_json.h"
#include "sinks/sink.h"

namespace bdt {

EventRing::EventRing(uint64_t max_age_ns, size_t max_events)
    : max_age_ns_(max_age_ns), max_events_(std::max<size_t>(max_events, 1)) {}

void EventRing::push(const Event& ev) {
  // Age out from the oldest end first: what is left is young enough.
  const uint64_t cutoff = ev.ts_ns > max_age_ns_ ? ev.ts_ns - max_age_ns_ : 0;
  while (n_ && at(0).ts_ns < cutoff) {
    head_ = (head_ + 1) % buf_.size();
    --n_;
  }
  if (n_ == buf_.size()) {
    if (buf_.size() < max_events_) {
      // Grow (amortized; stops at the cap): make the contents contiguous first.
      std::rotate(buf_.begin(), buf_.begin() + static_cast<ptrdiff_t>(head_), buf_.end());
      head_ = 0;
      buf_.resize(std::min(max_events_, std::max<size_t>(1024, buf_.size() * 2)));
    } else {
      // Full of young events: the oldest one goes.
      head_ = (head_ + 1) % buf_.size();
      --n_;
      ++dropped_count_;
    }
  }
  buf_[(head_ + n_) % buf_.size()] = ev;
  ++n_;
}

Snapshotter::Snapshotter(SnapshotOptions o, TraceHeader header)
    : o_(std::move(o)),
      header_(std::move(header)),
      ring_(static_cast<uint64_t>(std::max(o_.seconds, 0.0) * 1e9), o_.max_events) {}

std::string Snapshotter::file_name(const Finding& f) const {
  std::string t;
  if (header_.mono_to_realtime_ns) {
    int64_t ns = wall_ns(f.ts_ns, header_.mono_to_realtime_ns);
    time_t s = static_cast<time_t>(ns / 1'000'000'000);
    struct tm tm {};
    gmtime_r(&s, &tm);
    char b[32];
    std::strftime(b, sizeof b, "%Y%m%dT%H%M%S", &tm);
    t = fmt::format("{}.{:03}Z", b, (ns / 1'000'000) % 1000);
  } else {
    t = fmt::format("mono{}.{:03}", f.ts_ns / 1'000'000'000, (f.ts_ns / 1'000'000) % 1000);
  }
  std::string det;
  for (char c : f.detector + (f.kind.empty() ? "" : "-" + f.kind))
    det.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_');
  return fmt::format("snapshot-{}-{}", t, det);
}

SnapshotResult Snapshotter::on_finding(const Finding& f) {
  SnapshotResult r;
  if (written_ >= o_.max_files) {
    r.what = SnapshotResult::What::LimitReached;
    return r;
  }
  if (auto it = last_by_detector_.find(f.detector);
      it != last_by_detector_.end() && f.ts_ns < it->second + o_.min_interval_ns) {
    r.what = SnapshotResult::What::RateLimited;
    return r;
  }
  last_by_detector_[f.detector] = f.ts_ns;

  // Only events up to the finding (and no older than N s before it); findings
  // fired by time (stalls) may come later than the newest event.
  const uint64_t cutoff =
      f.ts_ns > static_cast<uint64_t>(o_.seconds * 1e9) ? f.ts_ns - static_cast<uint64_t>(o_.seconds * 1e9) : 0;
  size_t lo = 0, hi = ring_.size();
  while (lo < hi && ring_.at(lo).ts_ns < cutoff) ++lo;
  while (hi > lo && ring_.at(hi - 1).ts_ns > f.ts_ns) --hi;

  // Size cap: keep the newest events that fit (measured from the newest back).
  std::string head_line, finding_line;
  append_header_json(head_line, header_);
  head_line.pop_back();  // add the snapshot's own keys (readers ignore unknown header keys)
  head_line += ",\"snapshot\":{\"detector\":";
  append_json_string(head_line, f.detector);
  head_line += ",\"kind\":";
  append_json_string(head_line, f.kind);
  fmt::format_to(std::back_inserter(head_line), ",\"finding_ts_ns\":{},\"seconds\":{}", f.ts_ns,
                 o_.seconds);
  append_finding_json(finding_line, f);
  uint64_t budget = o_.max_bytes > head_line.size() + finding_line.size() + 200
                        ? o_.max_bytes - head_line.size() - finding_line.size() - 200
                        : 0;
  size_t start = hi;
  uint64_t used = 0;
  while (start > lo) {
    line_.clear();
    append_event_json(line_, ring_.at(start - 1));
    if (used + line_.size() + 1 > budget) break;
    used += line_.size() + 1;
    --start;
  }
  r.left_out = start - lo;
  r.events = hi - start;
  fmt::format_to(std::back_inserter(head_line), ",\"events\":{},\"left_out_for_size\":{}}}}}\n",
                 r.events, r.left_out);

  // Written under a fresh temporary name (mkostemp: O_CREAT|O_EXCL, 0600, so
  // never through a planted symlink), then given its final name without
  // replacing anything there (renameat2 RENAME_NOREPLACE).
  std::string base = file_name(f);
  std::string tmp = fmt::format("{}/.{}.XXXXXX", o_.dir, base);
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    r.error = fmt::format("cannot create a file in {}: {}", o_.dir, std::strerror(errno));
    return r;
  }
  std::FILE* out = ::fdopen(fd, "w");
  if (!out) {
    r.error = fmt::format("cannot write {}: {}", tmp, std::strerror(errno));
    ::close(fd);
    ::unlink(tmp.c_str());
    return r;
  }
  bool ok = std::fwrite(head_line.data(), 1, head_line.size(), out) == head_line.size();
  for (size_t i = start; ok && i < hi; ++i) {
    line_.clear();
    append_event_json(line_, ring_.at(i));
    line_.push_back('\n');
    ok = std::fwrite(line_.data(), 1, line_.size(), out) == line_.size();
  }
  finding_line.push_back('\n');
  ok = ok && std::fwrite(finding_line.data(), 1, finding_line.size(), out) == finding_line.size();
  int err = ok ? 0 : errno;
  if (std::fclose(out) != 0 && ok) ok = false, err = errno;
  std::string path = fmt::format("{}/{}.jsonl", o_.dir, base);
  for (int i = 2; ok; ++i) {
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) break;
    if (errno != EEXIST || i >= 1000) {
      ok = false;
      err = errno;
      break;
    }
    path = fmt::format("{}/{}-{}.jsonl", o_.dir, base, i);
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    r.error = fmt::format("cannot write {}: {}", path, std::strerror(err ? err : EIO));
    return r;
  }
  ++written_;
  r.what = SnapshotResult::What::Written;
  r.path = std::move(path);
  return r;
}

}  // namespace bdt
