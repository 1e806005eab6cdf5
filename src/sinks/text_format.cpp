// How each event is printed in text output: the one place to look.
#include <fmt/format.h>
#include <sys/sysmacros.h>

#include <ctime>

#include "bdt/sink.h"

namespace bdt {

namespace {
std::string flag_names(uint32_t bits, std::span<const FlagName> names) {
  std::string s;
  for (const auto& n : names)
    if (bits & n.bit) {
      if (!s.empty()) s += '|';
      s += n.name;
    }
  return s.empty() ? "-" : s;
}

std::string errno_str(int64_t ret) {
  if (ret >= 0) return fmt::format("{}", ret);
  switch (-ret) {
    case 5: return fmt::format("{} (EIO)", ret);
    case 11: return fmt::format("{} (EAGAIN)", ret);
    case 17: return fmt::format("{} (EEXIST)", ret);
    case 28: return fmt::format("{} (ENOSPC)", ret);
    case 22: return fmt::format("{} (EINVAL)", ret);
    case 14: return fmt::format("{} (EFAULT)", ret);
    case 4: return fmt::format("{} (EINTR)", ret);
    default: return fmt::format("{}", ret);
  }
}
}  // namespace

std::string format_dev(uint64_t st_dev) {
  return fmt::format("{}:{}", major(st_dev), minor(st_dev));
}

std::string format_time(uint64_t ts_ns, const TimeBase& tb) {
  if (tb.mono_to_realtime_ns != 0) {
    int64_t wall = static_cast<int64_t>(ts_ns) + tb.mono_to_realtime_ns;
    if (tb.utc) return format_wall_utc(wall);
    time_t secs = static_cast<time_t>(wall / 1'000'000'000);
    struct tm tm {};
    localtime_r(&secs, &tm);
    return fmt::format("{:02}:{:02}:{:02}.{:06}", tm.tm_hour, tm.tm_min, tm.tm_sec,
                       (wall % 1'000'000'000) / 1000);
  }
  int64_t rel = static_cast<int64_t>(ts_ns - tb.origin_ns);
  return fmt::format("+{}.{:06}", rel / 1'000'000'000, (rel % 1'000'000'000) / 1000);
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

std::string format_event_details(const Event& ev) {
  std::string s;
  append_event_details(s, ev);
  return s;
}

void append_event_details(std::string& s, const Event& ev) {
  auto out = std::back_inserter(s);
  bool has_file = ev.ino != 0;
  if (has_file) fmt::format_to(out, "dev={} ino={} ", format_dev(ev.dev), ev.ino);
  if (const auto* d = ev.as<DioBegin>()) {
    fmt::format_to(out, "{} pos={} count={}", d->write ? "write" : "read", d->pos, d->count);
    if (d->done_before) fmt::format_to(out, " done_before={}", d->done_before);
    if (d->aio) s += " aio";
    if (d->partial) s += " partial";
    if (d->nodatasum) s += " nodatasum";
    if (d->buf_file_ino)
      fmt::format_to(out, " buf=file(dev={} ino={} off={})", format_dev(d->buf_file_dev),
                     d->buf_file_ino, d->buf_file_off);
    else
      s += " buf=anon";
    fmt::format_to(out, ",{}{}", d->buf_shared ? "shared" : "private",
                   d->buf_writable ? ",writable" : "");
  } else if (const auto* d = ev.as<DioEnd>()) {
    fmt::format_to(out, "pos={} ret={}", d->pos, errno_str(d->ret));
    if (d->error) fmt::format_to(out, " error={}", errno_str(d->error));
    if (d->write) fmt::format_to(out, " {}", *d->write ? "write" : "read");
  } else if (const auto* g = ev.as<GetExtent>()) {
    if (g->phase != Phase::None) fmt::format_to(out, "{} ", to_string(g->phase));
    fmt::format_to(out, "start={} len={}", g->start, g->len);
    if (g->phase != Phase::Enter)
      fmt::format_to(out, " em=[{},+{}) block_start={} ret={}", g->em_start, g->em_len,
                     g->block_start, errno_str(g->ret));
  } else if (const auto* a = ev.as<EmAdd>()) {
    fmt::format_to(out, "start={} len={} block_start={} ret={}", a->start, a->len, a->block_start,
                   errno_str(a->ret));
  } else if (const auto* x = ev.as<EmExist>()) {
    fmt::format_to(out, "existing=[{},+{}) map=[{},+{}) asked=[{},+{})", x->e_start, x->e_len,
                   x->map_start, x->map_len, x->start, x->len);
  } else if (const auto* o = ev.as<Ordered>()) {
    fmt::format_to(out, "file_offset={} len={} flags={}", o->file_offset, o->len,
                   flag_names(o->flags, ordered_flag_names()));
    if (ev.type == EventType::OeFinish) fmt::format_to(out, " uptodate={}", o->uptodate ? 1 : 0);
  } else if (const auto* e = ev.as<ExtentBuffer>()) {
    if (e->phase != Phase::None) fmt::format_to(out, "{} ", to_string(e->phase));
    fmt::format_to(out, "eb_start={} refs={} bflags={}", e->eb_start, e->refs,
                   flag_names(e->bflags, eb_flag_names()));
  } else if (const auto* i = ev.as<Ioctl>()) {
    fmt::format_to(out, "cmd={} fd={}", to_string(i->cmd), i->fd);
    if (ev.type == EventType::IoctlEnd) fmt::format_to(out, " ret={}", errno_str(i->ret));
  } else if (const auto* r = ev.as<Reloc>()) {
    fmt::format_to(out, "block_group={}", r->block_group);
    if (ev.type == EventType::RelocEnd) fmt::format_to(out, " ret={}", errno_str(r->ret));
  } else if (const auto* c = ev.as<CsumError>()) {
    fmt::format_to(out, "offset={} len={} mirror={}", c->offset, c->len, c->mirror);
  }
  if (!ev.vm.empty()) fmt::format_to(out, " vm={}", ev.vm);
  if (!ev.image.empty()) fmt::format_to(out, " image={}", ev.image);
}

}  // namespace bdt
