// What a trace header says about the host and its clock (bdt/trace_header.h):
// this_hostname(), the host name live traces and dumps record, and
// format_wall_utc(), the one form wall-clock times take in every output, so
// outputs of several hosts can be told apart and lined up.
#include <fmt/format.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <ctime>

#include "bdt/trace_header.h"

namespace bdt {

std::string this_hostname() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return {};
  return std::string(buf, strnlen(buf, sizeof buf));
}

std::string format_wall_utc(int64_t wall_ns) {
  int64_t secs = wall_ns / 1'000'000'000, ns = wall_ns % 1'000'000'000;
  if (ns < 0) ns += 1'000'000'000, secs -= 1;
  const time_t t = static_cast<time_t>(secs);
  struct tm tm {};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ns / 1000);
}

}  // namespace bdt
