// A short, useful excerpt of a BPF verifier log: the verifier's own error
// line, the instruction it stopped at and the source line BTF gave it, not
// the whole log (which can be megabytes) nor libbpf's messages around it.
#pragma once

#include <string>
#include <string_view>

namespace bdt::loader {

// E.g. "R8 invalid mem access 'trusted_ptr_or_null_' at insn 23: r1 = *(u64 *)(r8 +0)
// (e->u.emx.e_start = BPF_CORE_READ(existing, start); @ extent_maps.bpf.h:151)".
// "" when the log has no error line.
std::string verifier_excerpt(std::string_view log);

// Does the log end with the verifier's summary ("processed N insns ...")? A
// log cut short by its buffer on kernels before 6.4 lacks it and its error.
bool verifier_log_complete(std::string_view log);

}  // namespace bdt::loader
