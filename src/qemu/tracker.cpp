// --qemu as the CLI drives it: watcher + attributor + statistics.
#include "bdt/qemu.h"

namespace bdt::qemu {

namespace {
Tracker::Options checked(Tracker::Options o) {
  for (uint32_t pid : o.discover.only_pids) inspect(pid, o.discover);  // throws InputError
  return o;
}
}  // namespace

Tracker::Tracker(Options o)
    : watcher_(checked(o).discover, o.poll_ms), stats_(o.max_inflight) {}

WatchDiff Tracker::poll(uint64_t now_ms) {
  WatchDiff d = watcher_.poll(now_ms);
  attr_.update(d);
  return d;
}

void Tracker::on_event(Event& ev) {
  attr_.apply(ev);
  stats_.on_event(ev);
}

void Tracker::on_finding(Finding& f) {
  attr_.apply(f);
  stats_.on_finding(f);
}

}  // namespace bdt::qemu
