// process_* metrics: see process.h.
#include "metrics/process.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>

namespace bdt::metrics {

namespace {

std::string slurp(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool to_u64(std::string_view s, uint64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::optional<ProcessStats> parse_proc_stat(std::string_view stat, long ticks_per_s, long page_bytes,
                                            uint64_t boot_time_s) {
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so the
  // fields are counted from the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string_view::npos || ticks_per_s <= 0 || page_bytes <= 0) return std::nullopt;
  std::string_view rest = stat.substr(close + 1);
  // Field 3 (state) is the first after ')'; we want 14 utime, 15 stime, 22
  // starttime, 23 vsize, 24 rss.
  uint64_t f[25] = {};
  int field = 3;
  size_t i = 0;
  while (field <= 24) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    if (i >= rest.size()) return std::nullopt;
    size_t j = rest.find_first_of(" \n", i);
    if (j == std::string_view::npos) j = rest.size();
    const bool wanted = field == 14 || field == 15 || field >= 22;  // others may be negative (nice)
    if (wanted && !to_u64(rest.substr(i, j - i), f[field])) return std::nullopt;
    ++field;
    i = j;
  }
  ProcessStats s;
  s.cpu_seconds = static_cast<double>(f[14] + f[15]) / static_cast<double>(ticks_per_s);
  s.start_time_s = static_cast<double>(boot_time_s) + static_cast<double>(f[22]) / static_cast<double>(ticks_per_s);
  s.virtual_bytes = f[23];
  s.resident_bytes = f[24] * static_cast<uint64_t>(page_bytes);
  return s;
}

std::optional<uint64_t> parse_boot_time(std::string_view proc_stat) {
  size_t at = 0;
  while (at < proc_stat.size()) {
    size_t end = proc_stat.find('\n', at);
    if (end == std::string_view::npos) end = proc_stat.size();
    std::string_view line = proc_stat.substr(at, end - at);
    if (line.starts_with("btime ")) {
      uint64_t v = 0;
      if (to_u64(line.substr(6), v)) return v;
      return std::nullopt;
    }
    at = end + 1;
  }
  return std::nullopt;
}

std::optional<ProcessStats> read_process_stats() {
  static const std::optional<uint64_t> btime = parse_boot_time(slurp("/proc/stat"));
  if (!btime) return std::nullopt;
  auto s = parse_proc_stat(slurp("/proc/self/stat"), sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), *btime);
  if (!s) return std::nullopt;
  if (DIR* d = opendir("/proc/self/fd")) {
    uint64_t n = 0;
    while (auto* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
    s->open_fds = n ? n - 1 : 0;  // not counting the descriptor that reads the directory
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) s->max_fds = rl.rlim_cur;
  return s;
}

}  // namespace bdt::metrics
