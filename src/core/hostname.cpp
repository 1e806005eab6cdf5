// this_hostname(): the host name live traces and dumps record in their header
// (TraceHeader::hostname), so outputs of several hosts can be told apart and
// lined up.
#include <unistd.h>

#include <climits>
#include <cstring>

#include "bdt/trace_header.h"

namespace bdt {

std::string this_hostname() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return {};
  return std::string(buf, strnlen(buf, sizeof buf));
}

}  // namespace bdt
