// btrfs-dio-trace: every payload field of the event model, described once.
//
// Each payload struct of event.h (DioBegin, DioEnd, ...) has one list here,
// FieldList<P>::list: its fields in their canonical order, one line each. The
// codecs walk that list (fields::for_each) instead of naming fields themselves:
//   - JSON writer and reader (src/core/event_json.cpp, src/replay/jsonl_reader.cpp):
//     the key is the field's name, written in list order; .required() and
//     .json_when() say when it must be present / is written;
//   - binary --record writer and reader (src/replay/record_codec.h): list
//     order, the width from the member's type (docs/record-format.md); bools
//     marked .bit(n) share one flag byte, written where the last of them sits;
//     .appended() fields may be missing from the end of a payload;
//   - raw BPF record decoder (src/live/decode.h): .raw(...) says where the
//     value comes from in struct bdt_raw_event (bpf/events.h);
//   - text formatter (src/sinks/text_format.cpp): "name=value" unless .text_*()
//     says otherwise.
// The fields every event has (ts_ns, pid, tid, comm, type, fs, dev, ino, vm,
// image) are not listed: they are the fixed head of every encoding, and
// changing them changes the record format version.
//
// Adding a field to a payload:
//   1. the member in event.h, with its default (what readers assume when a
//      trace does not carry it);
//   2. one line at the END of its list below, marked .appended(), with
//      .raw(...) naming its source in struct bdt_raw_event (add it there and
//      in the BPF programs first; bump BDT_RAW_ABI if the layout changes).
//      The binary record appends it to the payload, so both directions work:
//      older readers skip the bytes after the fields they know, and newer
//      readers take a body that ends before it (an older file's) and leave it
//      at its event.h default, as the JSON reader does with an absent key.
//      The fields before the first .appended() one are the payload's minimum,
//      which never changes. An appended field is optional (no .required()),
//      and a new bool is a plain u8 (no .bit: the flag byte stays where it
//      is); well_formed() below checks both, and that .appended() fields only
//      follow each other. An appended optional field is a compatible change:
//      no schema or format version bump (docs/events.md, "Versioning policy");
//   3. its row in docs/events.md and docs/record-format.md;
//   4. tests/unit/event_fields_test.cpp round-trips every field of every list
//      through every codec; give the new field a non-default value there.
// A struct member without a line here does not compile (member count check).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "bdt/event.h"
#include "events.h"  // struct bdt_raw_event: where each field comes from

namespace bdt::fields {

// ---- the raw ABI's enums are the model's ------------------------------------------
// decode.h converts the raw numbers with a plain cast; these make that safe.
#define BDT_SAME_TYPE(raw, model) \
  static_assert(raw == static_cast<int>(EventType::model), #raw " != EventType::" #model)
BDT_SAME_TYPE(BDT_EV_DIO_BEGIN, DioBegin);
BDT_SAME_TYPE(BDT_EV_DIO_END, DioEnd);
BDT_SAME_TYPE(BDT_EV_GET_EXTENT, GetExtent);
BDT_SAME_TYPE(BDT_EV_EM_ADD, EmAdd);
BDT_SAME_TYPE(BDT_EV_EM_EXIST, EmExist);
BDT_SAME_TYPE(BDT_EV_OE_ADD, OeAdd);
BDT_SAME_TYPE(BDT_EV_OE_SPLIT, OeSplit);
BDT_SAME_TYPE(BDT_EV_OE_START, OeStart);
BDT_SAME_TYPE(BDT_EV_OE_MARK_FINISHED, OeMarkFinished);
BDT_SAME_TYPE(BDT_EV_OE_FINISH, OeFinish);
BDT_SAME_TYPE(BDT_EV_OE_REMOVE, OeRemove);
BDT_SAME_TYPE(BDT_EV_EB_FREE, EbFree);
BDT_SAME_TYPE(BDT_EV_EB_FIND, EbFind);
BDT_SAME_TYPE(BDT_EV_EB_RELEASE, EbRelease);
BDT_SAME_TYPE(BDT_EV_IOCTL_BEGIN, IoctlBegin);
BDT_SAME_TYPE(BDT_EV_IOCTL_END, IoctlEnd);
BDT_SAME_TYPE(BDT_EV_RELOC_BEGIN, RelocBegin);
BDT_SAME_TYPE(BDT_EV_RELOC_END, RelocEnd);
BDT_SAME_TYPE(BDT_EV_CSUM_ERROR, CsumError);
BDT_SAME_TYPE(BDT_EV_DIO_FALLBACK, DioFallback);
#undef BDT_SAME_TYPE
static_assert(BDT_EV_MAX == kEventTypeCount + 1, "bdt_event_type and EventType differ in length");

static_assert(BDT_IOC_OTHER == static_cast<int>(IoctlCmd::Other));
static_assert(BDT_IOC_SEND == static_cast<int>(IoctlCmd::Send));
static_assert(BDT_IOC_BALANCE == static_cast<int>(IoctlCmd::Balance));
static_assert(BDT_IOC_BALANCE_V2 == static_cast<int>(IoctlCmd::BalanceV2));
static_assert(BDT_IOC_RM_DEV == static_cast<int>(IoctlCmd::RmDev));
static_assert(BDT_IOC_RM_DEV_V2 == static_cast<int>(IoctlCmd::RmDevV2));
static_assert(BDT_IOC_RESIZE == static_cast<int>(IoctlCmd::Resize));
inline constexpr IoctlCmd kLastIoctlCmd = IoctlCmd::Resize;  // the highest IoctlCmd
static_assert(BDT_IOC_RESIZE == static_cast<int>(kLastIoctlCmd));

static_assert(BDT_FB_CALL == static_cast<int>(FallbackVia::Call));
static_assert(BDT_FB_SYSCALL == static_cast<int>(FallbackVia::Syscall));
static_assert(BDT_FB_LIBAIO == static_cast<int>(FallbackVia::Libaio));
static_assert(BDT_FB_IO_URING == static_cast<int>(FallbackVia::IoUring));
inline constexpr FallbackVia kLastFallbackVia = FallbackVia::IoUring;

static_assert(BDT_PHASE_NONE == static_cast<int>(Phase::None));
static_assert(BDT_PHASE_ENTER == static_cast<int>(Phase::Enter));
static_assert(BDT_PHASE_EXIT == static_cast<int>(Phase::Exit));

// The raw record's type, in the model (nullopt: a type this build does not know).
constexpr std::optional<EventType> event_type_from_raw(uint32_t raw) {
  if (raw == BDT_EV_NONE || raw >= BDT_EV_MAX) return std::nullopt;
  return static_cast<EventType>(raw);
}
// A raw ioctl command number, in the model (a number this build does not know: Other).
constexpr IoctlCmd ioctl_cmd_from_raw(uint32_t raw) {
  return raw <= static_cast<uint32_t>(kLastIoctlCmd) ? static_cast<IoctlCmd>(raw)
                                                     : IoctlCmd::Other;
}

// A raw dio_fallback `via`, in the model (a value this build does not know: Call).
constexpr FallbackVia fallback_via_from_raw(uint32_t raw) {
  return raw <= static_cast<uint32_t>(kLastFallbackVia) ? static_cast<FallbackVia>(raw)
                                                        : FallbackVia::Call;
}

// ---- attributes --------------------------------------------------------------------
// A set of event types, one bit per EventType (0: none).
using TypeSet = uint32_t;
constexpr TypeSet type_bit(EventType t) { return TypeSet{1} << static_cast<unsigned>(t); }
inline constexpr TypeSet kAllTypes = ~TypeSet{0};
// The types that end something and carry its result.
inline constexpr TypeSet kEndTypes =
    type_bit(EventType::DioEnd) | type_bit(EventType::IoctlEnd) | type_bit(EventType::RelocEnd);

// When a field is written (JSON) or shown (text). Whatever this says, a phase
// of None and an unset optional are never written.
enum class When : uint8_t {
  Always,
  Nonzero,   // the value is not 0 / false
  NotEnter,  // the payload's phase is not Enter: values known only at exit
};

// How the text formatter shows a field (items are separated by one space).
enum class Style : uint8_t {
  Kv,          // label=value (flags: names joined by '|', "-" for none; bools 1/0)
  Errno,       // label=ret, with the errno name for negative values: "ret=-17 (EEXIST)"
  Words,       // a bool as a word: yes or no (an empty word shows nothing)
  Value,       // the value alone ("enter")
  RangeStart,  // label=[value   (followed by a RangeLen field)
  RangeLen,    // ,+value)       (glued to the RangeStart before it)
  Hidden,      // not shown
  Custom,      // shown by the function given to .text_with()
};

struct Attrs {
  TypeSet required = 0;             // JSON readers: required for these event types
  When json_when = When::Always;    // JSON writer
  std::span<const FlagName> (*flag_names)() = nullptr;  // a flag word: its names
  const char* flag_what = nullptr;  // "ordered-extent": for error messages
  int8_t bit = -1;                  // binary record: bit in the payload's flag byte
  Style style = Style::Kv;          // text
  When text_when = When::Always;
  TypeSet text_types = kAllTypes;   // text: shown for these event types only
  int8_t text_rank = -1;            // text: position (default: list position)
  const char* label = nullptr;      // text: name shown (default: the field's name)
  const char* yes = nullptr;        // Words: shown for true
  const char* no = "";              // Words: shown for false
  bool glued = false;               // text: no space before it
  bool appended = false;            // binary record: added after the payload's
                                    // minimum; older files end before it
};

struct NoFn {};

template <class M> struct MemberOf;
template <class C, class T> struct MemberOf<T C::*> {
  using Class = C;
  using Type = T;
};

// One field: a member of payload P, its JSON key and its attributes. Built
// with field<&P::member>("name") and the chained setters below.
template <auto Member, size_t N, class RawFn = NoFn, class TextFn = NoFn>
struct Field {
  using Payload = typename MemberOf<decltype(Member)>::Class;
  using Type = typename MemberOf<decltype(Member)>::Type;
  using TextFnType = TextFn;

  const char* name;
  std::array<char, N + 3> key_buf{};  // ,"name":
  Attrs a{};
  RawFn raw_fn{};
  TextFn text_fn{};

  static constexpr Type& ref(Payload& p) { return p.*Member; }
  static constexpr const Type& ref(const Payload& p) { return p.*Member; }
  // `,"name":`, the JSON key with its separator, for appending in one go.
  constexpr std::string_view json_key() const { return {key_buf.data(), key_buf.size()}; }
  constexpr std::string_view label() const { return a.label ? a.label : name; }
  constexpr bool is_flags() const { return a.flag_names != nullptr; }
  static constexpr bool has_raw = !std::is_same_v<RawFn, NoFn>;

  // ---- setters (each returns the changed field) ----
  constexpr Field required() const { return with([](Attrs& x) { x.required = kAllTypes; }); }
  constexpr Field required_for(TypeSet t) const {
    return with([t](Attrs& x) { x.required = t; });
  }
  constexpr Field json_when(When w) const { return with([w](Attrs& x) { x.json_when = w; }); }
  constexpr Field flags(std::span<const FlagName> (*names)(), const char* what) const {
    return with([=](Attrs& x) {
      x.flag_names = names;
      x.flag_what = what;
    });
  }
  constexpr Field bit(int n) const {
    return with([n](Attrs& x) { x.bit = static_cast<int8_t>(n); });
  }
  // Appended to the payload after its first release (see the top of this file).
  constexpr Field appended() const { return with([](Attrs& x) { x.appended = true; }); }
  constexpr Field text(Style s, When w = When::Always) const {
    return with([=](Attrs& x) {
      x.style = s;
      x.text_when = w;
    });
  }
  constexpr Field text_for(TypeSet t) const { return with([t](Attrs& x) { x.text_types = t; }); }
  constexpr Field text_at(int rank) const {
    return with([rank](Attrs& x) { x.text_rank = static_cast<int8_t>(rank); });
  }
  constexpr Field text_label(const char* l) const { return with([l](Attrs& x) { x.label = l; }); }
  constexpr Field text_words(const char* yes, const char* no = "", bool glued = false) const {
    return with([=](Attrs& x) {
      x.style = Style::Words;
      x.yes = yes;
      x.no = no;
      x.glued = glued;
    });
  }
  // Where the value comes from: fn(const bdt_raw_event& r, const auto& cx),
  // cx offering user_dev(kernel dev_t), ordered(kflags) and eb(kbflags).
  template <class F>
  constexpr Field<Member, N, F, TextFn> raw(F fn) const {
    return {name, key_buf, a, fn, text_fn};
  }
  // Shown by fn(auto& out, const P& p) (src/sinks/text_format.cpp's TextOut).
  template <class F>
  constexpr Field<Member, N, RawFn, F> text_with(F fn) const {
    Attrs b = a;
    b.style = Style::Custom;
    return {name, key_buf, b, raw_fn, fn};
  }

 private:
  template <class F>
  constexpr Field with(F f) const {
    Field c = *this;
    f(c.a);
    return c;
  }
};

template <auto Member, size_t N>
constexpr Field<Member, N> field(const char (&name)[N]) {
  Field<Member, N> f{name};
  f.key_buf[0] = ',';
  f.key_buf[1] = '"';
  for (size_t i = 0; i + 1 < N; ++i) f.key_buf[2 + i] = name[i];
  f.key_buf[N + 1] = '"';
  f.key_buf[N + 2] = ':';
  return f;
}

// The raw source of most fields: one expression of `r` (and `cx`).
#define BDT_RAW(expr) \
  [](const bdt_raw_event& r, [[maybe_unused]] const auto& cx) { return expr; }

// ---- the lists -----------------------------------------------------------------------
template <class P> struct FieldList;

template <> struct FieldList<DioBegin> {
  using P = DioBegin;
  static constexpr auto list = std::tuple{
      field<&P::pos>("pos").required().raw(BDT_RAW(r.u.dio.pos)).text_at(1),
      field<&P::count>("count").required().raw(BDT_RAW(r.u.dio.count)).text_at(2),
      field<&P::done_before>("done_before")
          .raw(BDT_RAW(r.u.dio.done_before))
          .text(Style::Kv, When::Nonzero)
          .text_at(3),
      field<&P::write>("write")
          .bit(0)
          .raw(BDT_RAW(bool(r.flags & BDT_F_WRITE)))
          .text_words("write", "read")
          .text_at(0),
      field<&P::aio>("aio").bit(1).raw(BDT_RAW(bool(r.flags & BDT_F_AIO))).text_words("aio").text_at(4),
      field<&P::buf_shared>("buf_shared")
          .bit(2)
          .raw(BDT_RAW(bool(r.flags & BDT_F_BUF_SHARED)))
          .text_words(",shared", ",private", true)
          .text_at(8),
      field<&P::buf_writable>("buf_writable")
          .bit(3)
          .raw(BDT_RAW(bool(r.flags & BDT_F_BUF_WRITABLE)))
          .text_words(",writable", "", true)
          .text_at(9),
      // The buffer's file is meaningful only when it has one (ino != 0).
      field<&P::buf_file_dev>("buf_file_dev")
          .raw(BDT_RAW(r.u.dio.buf_file_ino ? cx.user_dev(r.u.dio.buf_file_dev) : 0))
          .text(Style::Hidden),  // shown with buf_file_ino
      field<&P::buf_file_ino>("buf_file_ino")
          .raw(BDT_RAW(r.u.dio.buf_file_ino))
          .text_with([](auto& out, const P& p) {
            if (p.buf_file_ino)
              out.item("buf=file(dev=", out.dev(p.buf_file_dev), " ino=", p.buf_file_ino,
                       " off=", p.buf_file_off, ")");
            else
              out.item("buf=anon");
          })
          .text_at(7),
      field<&P::buf_file_off>("buf_file_off")
          .raw(BDT_RAW(r.u.dio.buf_file_ino ? r.u.dio.buf_file_off : 0))
          .text(Style::Hidden),  // shown with buf_file_ino
      field<&P::buf_addr>("buf_addr").raw(BDT_RAW(r.u.dio.buf_addr)).text(Style::Hidden),
      field<&P::nodatasum>("nodatasum")
          .bit(4)
          .raw(BDT_RAW(bool(r.flags & BDT_F_NODATASUM)))
          .text_words("nodatasum")
          .text_at(6),
      field<&P::partial>("partial")
          .bit(5)
          .raw(BDT_RAW(bool(r.flags & BDT_F_PARTIAL)))
          .text_words("partial")
          .text_at(5),
  };
};

template <> struct FieldList<DioEnd> {
  using P = DioEnd;
  static constexpr auto list = std::tuple{
      field<&P::pos>("pos").raw(BDT_RAW(r.u.dio.pos)),
      field<&P::ret>("ret").required().raw(BDT_RAW(r.u.dio.ret)).text(Style::Errno),
      field<&P::error>("error").raw(BDT_RAW(r.u.dio.error)).text(Style::Errno, When::Nonzero),
      // The direction is known only when the request's begin was seen.
      field<&P::write>("write")
          .raw(BDT_RAW((r.flags & BDT_F_DIR_KNOWN) ? std::optional<bool>(r.flags & BDT_F_WRITE)
                                                   : std::nullopt))
          .text_words("write", "read"),
      // Only where the stall trigger fired (findings only): dio-stuck's count.
      field<&P::later_done>("later_done")
          .appended()
          .json_when(When::Nonzero)
          .raw(BDT_RAW(r.u.dio.later_done))
          .text(Style::Kv, When::Nonzero),
      field<&P::stalled_begin_ns>("stalled_begin_ns")
          .appended()
          .json_when(When::Nonzero)
          .raw(BDT_RAW(r.u.dio.stalled_ts))
          .text(Style::Hidden),
      field<&P::stalled_tid>("stalled_tid")
          .appended()
          .json_when(When::Nonzero)
          .raw(BDT_RAW(r.u.dio.stalled_tid))
          .text(Style::Hidden),
      field<&P::stalled_ino>("stalled_ino")
          .appended()
          .json_when(When::Nonzero)
          .raw(BDT_RAW(r.u.dio.stalled_ino))
          .text(Style::Hidden),
  };
};

template <> struct FieldList<GetExtent> {
  using P = GetExtent;
  static constexpr auto list = std::tuple{
      field<&P::phase>("phase")
          .raw(BDT_RAW(r.phase == BDT_PHASE_ENTER ? Phase::Enter : Phase::Exit))
          .text(Style::Value),
      field<&P::start>("start").required().raw(BDT_RAW(r.u.ext.start)),
      field<&P::len>("len").required().raw(BDT_RAW(r.u.ext.len)),
      field<&P::em_start>("em_start")
          .json_when(When::NotEnter)
          .raw(BDT_RAW(r.u.ext.em_start))
          .text(Style::RangeStart, When::NotEnter)
          .text_label("em"),
      field<&P::em_len>("em_len")
          .json_when(When::NotEnter)
          .raw(BDT_RAW(r.u.ext.em_len))
          .text(Style::RangeLen, When::NotEnter),
      field<&P::block_start>("block_start")
          .json_when(When::NotEnter)
          .raw(BDT_RAW(r.u.ext.block_start))
          .text(Style::Kv, When::NotEnter),
      field<&P::ret>("ret")
          .json_when(When::NotEnter)
          .raw(BDT_RAW(r.u.ext.ret))
          .text(Style::Errno, When::NotEnter),
  };
};

template <> struct FieldList<EmAdd> {
  using P = EmAdd;
  static constexpr auto list = std::tuple{
      field<&P::start>("start").required().raw(BDT_RAW(r.u.ext.start)),
      field<&P::len>("len").required().raw(BDT_RAW(r.u.ext.len)),
      field<&P::block_start>("block_start").raw(BDT_RAW(r.u.ext.block_start)),
      field<&P::ret>("ret").raw(BDT_RAW(r.u.ext.ret)).text(Style::Errno),
  };
};

template <> struct FieldList<EmExist> {
  using P = EmExist;
  static constexpr auto list = std::tuple{
      field<&P::e_start>("e_start")
          .required()
          .raw(BDT_RAW(r.u.emx.e_start))
          .text(Style::RangeStart)
          .text_label("existing"),
      field<&P::e_len>("e_len").required().raw(BDT_RAW(r.u.emx.e_len)).text(Style::RangeLen),
      field<&P::map_start>("map_start")
          .required()
          .raw(BDT_RAW(r.u.emx.map_start))
          .text(Style::RangeStart)
          .text_label("map"),
      field<&P::map_len>("map_len").required().raw(BDT_RAW(r.u.emx.map_len)).text(Style::RangeLen),
      field<&P::start>("start")
          .required()
          .raw(BDT_RAW(r.u.emx.start))
          .text(Style::RangeStart)
          .text_label("asked"),
      field<&P::len>("len").required().raw(BDT_RAW(r.u.emx.len)).text(Style::RangeLen),
  };
};

template <> struct FieldList<Ordered> {
  using P = Ordered;
  static constexpr auto list = std::tuple{
      field<&P::file_offset>("file_offset").required().raw(BDT_RAW(r.u.oe.file_offset)),
      field<&P::len>("len").required().raw(BDT_RAW(r.u.oe.len)),
      field<&P::flags>("flags")
          .flags(ordered_flag_names, "ordered-extent")
          .raw(BDT_RAW(cx.ordered(r.u.oe.kflags))),
      // oe_finish carries the kernel's result; the others say whether IOERR is set.
      field<&P::uptodate>("uptodate")
          .raw(BDT_RAW(r.type == BDT_EV_OE_FINISH ? bool(r.flags & BDT_F_UPTODATE)
                                                  : !(cx.ordered(r.u.oe.kflags) & oef::IOERR)))
          .text_for(type_bit(EventType::OeFinish)),
  };
};

template <> struct FieldList<ExtentBuffer> {
  using P = ExtentBuffer;
  static constexpr auto list = std::tuple{
      field<&P::phase>("phase")
          .raw(BDT_RAW(static_cast<Phase>(r.phase <= BDT_PHASE_EXIT ? r.phase : 0)))
          .text(Style::Value),
      field<&P::eb_start>("eb_start").required().raw(BDT_RAW(r.u.eb.eb_start)),
      field<&P::refs>("refs").raw(BDT_RAW(r.u.eb.refs)),
      field<&P::bflags>("bflags")
          .flags(eb_flag_names, "extent-buffer")
          .raw(BDT_RAW(cx.eb(r.u.eb.kbflags))),
      field<&P::eb_id>("eb_id")
          .json_when(When::Nonzero)
          .raw(BDT_RAW(r.u.eb.eb_ptr))
          .text(Style::Hidden),
  };
};

template <> struct FieldList<Ioctl> {
  using P = Ioctl;
  static constexpr auto list = std::tuple{
      field<&P::fd>("fd").raw(BDT_RAW(static_cast<int32_t>(r.u.ioc.fd))).text_at(1),
      // A command this build does not name (a newer writer's) reads as Other.
      field<&P::cmd>("cmd").required().raw(BDT_RAW(ioctl_cmd_from_raw(r.u.ioc.cmd))).text_at(0),
      field<&P::ret>("ret")
          .required_for(type_bit(EventType::IoctlEnd))
          .raw(BDT_RAW(r.u.ioc.ret))
          .text(Style::Errno)
          .text_for(type_bit(EventType::IoctlEnd)),
  };
};

template <> struct FieldList<Reloc> {
  using P = Reloc;
  static constexpr auto list = std::tuple{
      field<&P::block_group>("block_group").raw(BDT_RAW(r.u.rel.block_group)),
      field<&P::ret>("ret")
          .raw(BDT_RAW(r.u.rel.ret))
          .text(Style::Errno)
          .text_for(type_bit(EventType::RelocEnd)),
  };
};

template <> struct FieldList<CsumError> {
  using P = CsumError;
  static constexpr auto list = std::tuple{
      field<&P::offset>("offset").required().raw(BDT_RAW(r.u.csum.offset)),
      field<&P::len>("len").required().raw(BDT_RAW(r.u.csum.len)),
      field<&P::mirror>("mirror").raw(BDT_RAW(r.u.csum.mirror)),
  };
};

template <> struct FieldList<DioFallback> {
  using P = DioFallback;
  static constexpr auto list = std::tuple{
      field<&P::pos>("pos").required().raw(BDT_RAW(r.u.fb.pos)),
      field<&P::count>("count").required().raw(BDT_RAW(r.u.fb.count)),
      field<&P::fd>("fd").raw(BDT_RAW(r.u.fb.fd)),
      field<&P::via>("via").raw(BDT_RAW(fallback_via_from_raw(r.u.fb.via))),
      field<&P::nodatasum>("nodatasum")
          .bit(0)
          .raw(BDT_RAW(bool(r.flags & BDT_F_NODATASUM)))
          .text_words("nodatasum"),
      field<&P::unaligned>("unaligned")
          .bit(1)
          .raw(BDT_RAW(bool(r.flags & BDT_F_UNALIGNED)))
          .text_words("unaligned"),
      field<&P::requested>("requested")
          .bit(2)
          .raw(BDT_RAW(bool(r.flags & BDT_F_REQUESTED)))
          .text_words("requested"),
  };
};

#undef BDT_RAW

// ---- walking a list ------------------------------------------------------------------
template <class P>
inline constexpr size_t count = std::tuple_size_v<std::remove_cv_t<decltype(FieldList<P>::list)>>;

// f(field) for every field of P, in list order.
template <class P, class F>
constexpr void for_each(F&& f) {
  std::apply([&](const auto&... d) { (f(d), ...); }, FieldList<P>::list);
}

// The field list's order for text: by .text_at() rank, else list position.
template <class P>
constexpr auto text_order() {
  std::array<int, count<P>> rank{};
  size_t i = 0;
  for_each<P>([&](const auto& d) {
    rank[i] = d.a.text_rank >= 0 ? d.a.text_rank : static_cast<int>(i);
    ++i;
  });
  std::array<size_t, count<P>> order{};
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  for (size_t x = 1; x < order.size(); ++x)  // stable insertion sort
    for (size_t y = x; y > 0 && rank[order[y]] < rank[order[y - 1]]; --y)
      std::swap(order[y], order[y - 1]);
  return order;
}

// f(field) for every field of P, in text order.
template <class P, class F>
void for_each_text(F&& f) {
  static constexpr auto order = text_order<P>();
  [&]<size_t... K>(std::index_sequence<K...>) {
    (f(std::get<order[K]>(FieldList<P>::list)), ...);
  }(std::make_index_sequence<count<P>>{});
}

// The payload's phase (None for payloads without one), for When::NotEnter.
template <class P>
constexpr Phase phase_of(const P& p) {
  if constexpr (requires { p.phase; }) return p.phase;
  else return Phase::None;
}

// Whether field d of p is written (JSON) or shown (text) under `w`.
template <class D, class P>
constexpr bool holds(When w, const D& d, const P& p) {
  switch (w) {
    case When::Always: return true;
    case When::Nonzero: {
      const auto& v = d.ref(p);
      if constexpr (std::is_arithmetic_v<std::remove_cvref_t<decltype(v)>>) return v != 0;
      else return true;
    }
    case When::NotEnter: return phase_of(p) != Phase::Enter;
  }
  return true;
}

// ---- completeness: every member of every payload is listed ------------------------------
namespace detail {
struct AnyMember {
  template <class T>
  operator T() const;  // never defined: only used in unevaluated checks
};
template <class T, class... A>
constexpr size_t aggregate_members() {
  if constexpr (requires { T{A{}..., AnyMember{}}; })
    return aggregate_members<T, A..., AnyMember>();
  else
    return sizeof...(A);
}
template <class... P>
constexpr bool all_listed(std::variant<P...>*) {
  return ((aggregate_members<P>() == count<P>) && ...);
}

// The attributes make sense for the member's type.
template <class P>
constexpr bool well_formed() {
  bool ok = true, appended = false;
  uint32_t bits = 0;
  for_each<P>([&](const auto& d) {
    using D = std::remove_cvref_t<decltype(d)>;
    using T = typename D::Type;
    ok = ok && D::has_raw;                                             // a raw source
    ok = ok && (d.a.bit < 0 || (std::is_same_v<T, bool> && d.a.bit < 8 &&
                                !(bits & (1u << d.a.bit))));           // distinct flag bits
    if (d.a.bit >= 0) bits |= 1u << d.a.bit;
    // After the first appended field every field is appended, optional and
    // not in the flag byte: older files end at any of these fields.
    appended = appended || d.a.appended;
    ok = ok && (!appended || (d.a.appended && d.a.bit < 0 && d.a.required == 0));
    ok = ok && (!d.is_flags() || std::is_same_v<T, uint32_t>);        // flag words are u32
    ok = ok && ((d.a.style == Style::Custom) == !std::is_same_v<typename D::TextFnType, NoFn>);
    ok = ok && (d.a.style != Style::Words || d.a.yes != nullptr);
    ok = ok && (d.a.style != Style::Errno || std::is_signed_v<T>);
  });
  return ok;
}
template <class... P>
constexpr bool all_well_formed(std::variant<P...>*) {
  return (well_formed<P>() && ...);
}
}  // namespace detail
static_assert(detail::all_listed(static_cast<Payload*>(nullptr)),
              "a payload member of event.h has no line in its FieldList (event_fields.h)");
static_assert(detail::all_well_formed(static_cast<Payload*>(nullptr)),
              "a FieldList line lacks .raw() or has attributes that do not fit its member's type, "
              "or a field after an .appended() one is not appended, optional and without .bit");

}  // namespace bdt::fields
