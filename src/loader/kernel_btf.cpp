// The running kernel's BTF as the loader and doctor ask about it
// (loader/kernel_btf.h).
#include "loader/kernel_btf.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace bdt::loader {

KernelBtf::KernelBtf() {
  vmlinux_ = btf__load_vmlinux_btf();
  if (!vmlinux_) {
    error_ = std::strerror(errno);
    return;
  }
  if (access("/sys/kernel/btf/btrfs", R_OK) == 0) {
    btrfs_ = btf__load_module_btf("btrfs", vmlinux_);
  }
}

KernelBtf::~KernelBtf() {
  btf__free(btrfs_);
  btf__free(vmlinux_);
}

bool KernelBtf::has(const std::string& name, int kind) const {
  if (vmlinux_ && btf__find_by_name_kind(vmlinux_, name.c_str(), kind) > 0) return true;
  // Split BTF: the module's lookup also covers vmlinux, harmless.
  if (btrfs_ && btf__find_by_name_kind(btrfs_, name.c_str(), kind) > 0) return true;
  return false;
}

bool KernelBtf::has_typedef(const std::string& name) const { return has(name, BTF_KIND_TYPEDEF); }
bool KernelBtf::has_func(const std::string& name) const { return has(name, BTF_KIND_FUNC); }
bool KernelBtf::has_struct(const std::string& name) const { return has(name, BTF_KIND_STRUCT); }

const struct btf* KernelBtf::find(const std::string& name, int kind, int* id) const {
  for (const struct btf* b : {static_cast<const struct btf*>(btrfs_),
                              static_cast<const struct btf*>(vmlinux_)}) {
    if (!b) continue;
    const int i = btf__find_by_name_kind(b, name.c_str(), kind);
    if (i > 0) {
      *id = i;
      return b;
    }
  }
  return nullptr;
}

std::string KernelBtf::pointee_struct(const struct btf* b, unsigned type_id) const {
  const struct btf_type* t = btf__type_by_id(b, type_id);
  if (!t || !btf_is_ptr(t)) return {};
  t = btf__type_by_id(b, t->type);
  while (t && (btf_is_mod(t) || btf_is_typedef(t))) t = btf__type_by_id(b, t->type);
  if (!t || !(btf_is_struct(t) || btf_is_union(t))) return {};
  return btf__name_by_offset(b, t->name_off);
}

int KernelBtf::func_nargs(const std::string& func) const {
  int id = 0;
  const struct btf* b = find(func, BTF_KIND_FUNC, &id);
  if (!b) return -1;
  const struct btf_type* proto = btf__type_by_id(b, btf__type_by_id(b, id)->type);
  return proto && btf_is_func_proto(proto) ? static_cast<int>(btf_vlen(proto)) : -1;
}

int KernelBtf::tracepoint_nargs(const std::string& tp) const {
  int id = 0;
  const struct btf* b = find("btf_trace_" + tp, BTF_KIND_TYPEDEF, &id);
  if (!b) return -1;
  const struct btf_type* ptr = btf__type_by_id(b, btf__type_by_id(b, id)->type);
  if (!ptr || !btf_is_ptr(ptr)) return -1;
  const struct btf_type* proto = btf__type_by_id(b, ptr->type);
  return proto && btf_is_func_proto(proto) && btf_vlen(proto) > 0 ? static_cast<int>(btf_vlen(proto)) - 1
                                                                   : -1;
}

std::string KernelBtf::func_param_struct(const std::string& func, int idx) const {
  int id = 0;
  const struct btf* b = find(func, BTF_KIND_FUNC, &id);
  if (!b) return {};
  const struct btf_type* proto = btf__type_by_id(b, btf__type_by_id(b, id)->type);
  if (!proto || !btf_is_func_proto(proto) || idx < 0 || idx >= static_cast<int>(btf_vlen(proto)))
    return {};
  return pointee_struct(b, btf_params(proto)[idx].type);
}

std::string KernelBtf::member_struct(const std::string& strct, const std::string& member) const {
  int id = 0;
  const struct btf* b = find(strct, BTF_KIND_STRUCT, &id);
  if (!b) return {};
  const struct btf_type* t = btf__type_by_id(b, id);
  const struct btf_member* m = btf_members(t);
  for (unsigned i = 0; i < btf_vlen(t); ++i)
    if (member == btf__name_by_offset(b, m[i].name_off)) return pointee_struct(b, m[i].type);
  return {};
}

void KernelBtf::for_each_enumerator(
    const std::function<void(std::string_view, int64_t)>& f) const {
  auto walk = [&](const struct btf* b, unsigned first) {
    const unsigned n = btf__type_cnt(b);
    for (unsigned id = first; id < n; ++id) {
      const struct btf_type* t = btf__type_by_id(b, id);
      if (!t) continue;
      if (btf_is_enum(t)) {
        const struct btf_enum* e = btf_enum(t);
        for (unsigned i = 0; i < btf_vlen(t); ++i)
          f(btf__name_by_offset(b, e[i].name_off), static_cast<int64_t>(e[i].val));
      } else if (btf_is_enum64(t)) {
        const struct btf_enum64* e = btf_enum64(t);
        for (unsigned i = 0; i < btf_vlen(t); ++i)
          f(btf__name_by_offset(b, e[i].name_off), static_cast<int64_t>(btf_enum64_value(&e[i])));
      }
    }
  };
  if (vmlinux_) walk(vmlinux_, 1);
  if (btrfs_) walk(btrfs_, btf__type_cnt(vmlinux_));
}

}  // namespace bdt::loader
