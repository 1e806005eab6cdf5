// The running kernel's BTF, as the loader and the doctor ask about it:
// does tracepoint X have a btf_trace_X type, does function Y exist, which
// values do named enumerators have.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

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

 private:
  bool has(const std::string& name, int kind) const;
  // The BTF holding name (module first: its lookups cover vmlinux too) and the id.
  const struct btf* find(const std::string& name, int kind, int* id) const;
  std::string pointee_struct(const struct btf* b, unsigned type_id) const;
  struct btf* vmlinux_ = nullptr;
  struct btf* btrfs_ = nullptr;
  std::string error_;
};

}  // namespace bdt::loader
