// Names of hooks and mechanisms (bdt/hooks.h), from bpf/hooks.def.
#include "bdt/hooks.h"

#include <array>

namespace bdt {

namespace {
struct Names {
  std::string_view token, name;
};
constexpr std::array<Names, kHookCount> kNames = {{
#define BDT_TRACEPOINT(id, system, tracepoint, ...) {#id, #tracepoint},
#define BDT_SYSCALL(id, system, tracepoint, ...) {#id, #tracepoint},
#define BDT_FUNCTION(id, name, ...) {#id, name},
#define BDT_DETECTOR(...)
#include "hooks.def"
#include "hooks_undef.h"
}};
constexpr std::array<std::string_view, BDT_MECH_END> kMechanisms = {
    "none", "tp_btf", "raw_tp", "tracepoint", "fentry", "kprobe"};
}  // namespace

std::string_view to_string(Mechanism m) {
  const auto i = static_cast<size_t>(m);
  return i < kMechanisms.size() ? kMechanisms[i] : "?";
}

std::optional<Mechanism> mechanism_from_string(std::string_view s) {
  for (size_t i = 0; i < kMechanisms.size(); ++i)
    if (kMechanisms[i] == s) return static_cast<Mechanism>(i);
  return std::nullopt;
}

std::string_view hook_name(HookId id) {
  const auto i = index_of(id);
  return i < kNames.size() ? kNames[i].name : "?";
}

std::string_view hook_token(HookId id) {
  const auto i = index_of(id);
  return i < kNames.size() ? kNames[i].token : "?";
}

std::optional<HookId> hook_from_token(std::string_view token) {
  for (size_t i = 0; i < kNames.size(); ++i)
    if (kNames[i].token == token) return hook_at(i);
  return std::nullopt;
}

}  // namespace bdt
