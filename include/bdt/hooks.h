// Hooks and the mechanisms that attach them: the names every layer uses to
// say what the tracer can see on this kernel. The hooks themselves (kernel
// names, programs, alternatives, argument layouts, the detectors that need
// them) are declared once in bpf/hooks.def; the loader's view of that table
// is src/loader/hook_table.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "hook_ids.h"

namespace bdt {

// What --backend asks for: the mechanism of the function hooks (tracepoint
// hooks use their best mechanism whatever the backend).
enum class Backend { Auto, Fentry, Kprobe, Tracepoint };

enum class Mechanism : uint8_t {
  None = BDT_MECH_NONE,
  TpBtf = BDT_MECH_TP_BTF,
  RawTp = BDT_MECH_RAW_TP,
  Tracepoint = BDT_MECH_TRACEPOINT,
  Fentry = BDT_MECH_FENTRY,
  Kprobe = BDT_MECH_KPROBE,
};
// "none", "tp_btf", "raw_tp", "tracepoint", "fentry", "kprobe" (doctor, the
// record header, metrics labels).
std::string_view to_string(Mechanism m);
std::optional<Mechanism> mechanism_from_string(std::string_view s);

// One per entry of bpf/hooks.def, in table order (the order doctor lists them).
enum class HookId : uint8_t {
#define BDT_TRACEPOINT(id, ...) id = BDT_HOOK_##id,
#define BDT_SYSCALL(id, ...) id = BDT_HOOK_##id,
#define BDT_FUNCTION(id, ...) id = BDT_HOOK_##id,
#define BDT_DETECTOR(...)
#include "hooks.def"
#include "hooks_undef.h"
};
inline constexpr size_t kHookCount = BDT_HOOK_END - 1;
inline constexpr size_t index_of(HookId id) { return static_cast<size_t>(id) - 1; }
inline constexpr HookId hook_at(size_t index) { return static_cast<HookId>(index + 1); }

// As doctor prints it: the tracepoint's name ("iomap_dio_rw_begin",
// "sys_enter_ioctl") or the function's with "()" ("btrfs_get_extent()").
std::string_view hook_name(HookId id);
// The id as the table spells it ("dio_begin", "get_ext"): program names are
// <prefix>_<token>; BDT_TEST_REFUSE takes it.
std::string_view hook_token(HookId id);
std::optional<HookId> hook_from_token(std::string_view token);

// What became of one hook in a session (doctor, the startup lines, the
// record header, metrics).
struct HookStatus {
  HookId id{};
  Mechanism mechanism = Mechanism::None;
  bool attached = false;
  std::string reason;  // why this mechanism / why none, with any refusals on the way
  std::string_view name() const { return hook_name(id); }
};

}  // namespace bdt
