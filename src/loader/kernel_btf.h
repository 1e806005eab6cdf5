// The running kernel's BTF, as the loader and the doctor ask about it:
// does tracepoint X have a btf_trace_X type, does function Y exist, which
// values do named enumerators have.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct btf;

namespace bdt::loader {

class KernelBtf {
 public:
  KernelBtf();  // never throws; check vmlinux()
  ~KernelBtf();
  KernelBtf(const KernelBtf&) = delete;
  KernelBtf& operator=(const KernelBtf&) = delete;

  bool vmlinux() const { return vmlinux_ != nullptr; }
  bool btrfs_module() const { return btrfs_ != nullptr; }
  const std::string& error() const { return error_; }

  // Searches vmlinux and, when btrfs is a module, its module BTF.
  bool has_typedef(const std::string& name) const;
  bool has_func(const std::string& name) const;
  bool has_struct(const std::string& name) const;
  bool has_tracepoint_type(const std::string& tp) const { return has_typedef("btf_trace_" + tp); }
  // Function prototypes (vmlinux or btrfs module): number of parameters (-1 if
  // the function is not in BTF), and the struct a pointer parameter points to
  // ("" when not a pointer to a named struct).
  int func_nargs(const std::string& func) const;
  // Arguments of tracepoint tp as tp_btf programs get them (btf_trace_<tp>'s
  // prototype without its leading context pointer); -1 if not in BTF.
  int tracepoint_nargs(const std::string& tp) const;
  std::string func_param_struct(const std::string& func, int idx) const;
  // The struct a pointer member points to, e.g. ("btrfs_ordered_extent", "inode").
  std::string member_struct(const std::string& strct, const std::string& member) const;
  // Calls f(name, value) for every enumerator of every enum (vmlinux + btrfs).
  void for_each_enumerator(const std::function<void(std::string_view, int64_t)>& f) const;
  // What an fentry program on func attaches by: the function's BTF type id and the fd of
  // the kernel BTF object holding it (0: vmlinux; the btrfs module's, opened once and
  // owned here). False when func is not in BTF or the module's object is not found.
  bool func_attach_target(const std::string& func, int* btf_id, int* btf_obj_fd) const;

 private:
  bool has(const std::string& name, int kind) const { return find(name, kind, nullptr) != nullptr; }
  // The BTF holding name (vmlinux first, then the module's own types) and the id.
  const struct btf* find(const std::string& name, int kind, int* id) const;
  std::string pointee_struct(const struct btf* b, unsigned type_id) const;
  // (hash of kind and name, type id), sorted: btf__find_by_name_kind scans every type
  // (~130 k in a distribution vmlinux) per call and gathering the facts asks a few hundred
  // times, seconds on a slow (emulated) CPU; one pass builds these.
  using Index = std::vector<std::pair<uint64_t, uint32_t>>;
  static Index index_of(const struct btf* b, unsigned first);
  static int lookup(const struct btf* b, const Index& idx, const std::string& name, int kind);
  struct btf* vmlinux_ = nullptr;
  struct btf* btrfs_ = nullptr;
  Index vmlinux_index_, btrfs_index_;
  mutable int btrfs_obj_fd_ = -2;  // -2: not looked for yet; -1: not found
  std::string error_;
};

}  // namespace bdt::loader
