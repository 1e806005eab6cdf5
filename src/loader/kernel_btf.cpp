// The running kernel's BTF as the loader and doctor ask about it
// (loader/kernel_btf.h).
#include "loader/kernel_btf.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace bdt::loader {

KernelBtf::KernelBtf() {
  vmlinux_ = btf__load_vmlinux_btf();
  if (!vmlinux_) {
    error_ = std::strerror(errno);
    return;
  }
  vmlinux_index_ = index_of(vmlinux_, 1);
  if (access("/sys/kernel/btf/btrfs", R_OK) == 0) {
    btrfs_ = btf__load_module_btf("btrfs", vmlinux_);
    if (btrfs_) btrfs_index_ = index_of(btrfs_, btf__type_cnt(vmlinux_));
  }
}

KernelBtf::~KernelBtf() {
  if (btrfs_obj_fd_ >= 0) close(btrfs_obj_fd_);
  btf__free(btrfs_);
  btf__free(vmlinux_);
}

namespace {
uint64_t name_key(int kind, std::string_view name) {
  uint64_t h = 1469598103934665603ull ^ static_cast<uint64_t>(kind);  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}
}  // namespace

KernelBtf::Index KernelBtf::index_of(const struct btf* b, unsigned first) {
  Index idx;
  const unsigned n = btf__type_cnt(b);
  idx.reserve(n > first ? n - first : 0);
  for (unsigned id = first; id < n; ++id) {
    const struct btf_type* t = btf__type_by_id(b, id);
    if (!t || !t->name_off) continue;
    idx.emplace_back(name_key(btf_kind(t), btf__name_by_offset(b, t->name_off)), id);
  }
  std::sort(idx.begin(), idx.end());  // by hash, then id: the first match is the lowest id
  return idx;
}

int KernelBtf::lookup(const struct btf* b, const Index& idx, const std::string& name, int kind) {
  const uint64_t k = name_key(kind, name);
  for (auto it = std::lower_bound(idx.begin(), idx.end(), std::make_pair(k, 0u));
       it != idx.end() && it->first == k; ++it) {
    const struct btf_type* t = btf__type_by_id(b, it->second);
    if (btf_kind(t) == kind && name == btf__name_by_offset(b, t->name_off)) return static_cast<int>(it->second);
  }
  return -1;
}

// The same answer as btf__find_by_name_kind on the module's split BTF (it searches vmlinux's
// types first, then the module's own).
const struct btf* KernelBtf::find(const std::string& name, int kind, int* id) const {
  int i = vmlinux_ ? lookup(vmlinux_, vmlinux_index_, name, kind) : -1;
  const struct btf* b = vmlinux_;
  if (i < 0 && btrfs_) {
    i = lookup(btrfs_, btrfs_index_, name, kind);
    b = btrfs_;
  }
  if (i < 0) return nullptr;
  if (id) *id = i;
  return b;
}

bool KernelBtf::func_attach_target(const std::string& func, int* btf_id, int* btf_obj_fd) const {
  const struct btf* b = find(func, BTF_KIND_FUNC, btf_id);
  if (!b) return false;
  if (b == vmlinux_) {
    *btf_obj_fd = 0;
    return true;
  }
  if (btrfs_obj_fd_ == -2) {  // the loaded kernel BTF object named "btrfs"
    btrfs_obj_fd_ = -1;
    for (__u32 id = 0; btrfs_obj_fd_ < 0 && bpf_btf_get_next_id(id, &id) == 0;) {
      const int fd = bpf_btf_get_fd_by_id(id);
      if (fd < 0) continue;
      char name[64] = {};
      bpf_btf_info info{};
      info.name = reinterpret_cast<uintptr_t>(name);
      info.name_len = sizeof name;
      __u32 len = sizeof info;
      if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.kernel_btf && std::strcmp(name, "btrfs") == 0)
        btrfs_obj_fd_ = fd;
      else
        close(fd);
    }
  }
  *btf_obj_fd = btrfs_obj_fd_;
  return btrfs_obj_fd_ >= 0;
}

bool KernelBtf::has_typedef(const std::string& name) const { return has(name, BTF_KIND_TYPEDEF); }
bool KernelBtf::has_func(const std::string& name) const { return has(name, BTF_KIND_FUNC); }
bool KernelBtf::has_struct(const std::string& name) const { return has(name, BTF_KIND_STRUCT); }

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
