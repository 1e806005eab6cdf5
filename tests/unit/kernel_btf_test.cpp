// loader::KernelBtf's name lookups (an index built in one pass) against libbpf's own
// linear btf__find_by_name_kind, on this machine's kernel BTF.
#include <bpf/btf.h>
#include <gtest/gtest.h>

#include <string>

#include "loader/kernel_btf.h"

using bdt::loader::KernelBtf;

namespace {
struct Libbpf {
  struct btf* v = btf__load_vmlinux_btf();
  ~Libbpf() { btf__free(v); }
};
}  // namespace

TEST(KernelBtf, LookupsAgreeWithLibbpf) {
  KernelBtf k;
  Libbpf l;
  if (!k.vmlinux() || !l.v) GTEST_SKIP() << "SKIPPED: this kernel exposes no BTF (/sys/kernel/btf/vmlinux)";
  const unsigned n = btf__type_cnt(l.v);
  ASSERT_GT(n, 1000u);
  int funcs = 0, structs = 0, typedefs = 0;
  // Every 97th type: a few thousand names of every kind, with duplicates and anonymous ones.
  for (unsigned id = 1; id < n; id += 97) {
    const struct btf_type* t = btf__type_by_id(l.v, id);
    if (!t->name_off) continue;
    const std::string name = btf__name_by_offset(l.v, t->name_off);
    if (btf_is_func(t)) {
      ++funcs;
      EXPECT_TRUE(k.has_func(name)) << name;
      const int first = btf__find_by_name_kind(l.v, name.c_str(), BTF_KIND_FUNC);
      const struct btf_type* proto = btf__type_by_id(l.v, btf__type_by_id(l.v, first)->type);
      EXPECT_EQ(k.func_nargs(name), static_cast<int>(btf_vlen(proto))) << name;
      int bid = -1, fd = -1;
      ASSERT_TRUE(k.func_attach_target(name, &bid, &fd)) << name;
      EXPECT_EQ(bid, first) << name;  // the first of its name, as libbpf attaches
      EXPECT_EQ(fd, 0) << name;       // vmlinux
    } else if (btf_is_struct(t)) {
      ++structs;
      EXPECT_TRUE(k.has_struct(name)) << name;
    } else if (btf_is_typedef(t)) {
      ++typedefs;
      EXPECT_TRUE(k.has_typedef(name)) << name;
    }
  }
  EXPECT_GT(funcs, 10);
  EXPECT_GT(structs, 10);
  EXPECT_GT(typedefs, 1);
  // Names of another kind or of nothing at all.
  EXPECT_FALSE(k.has_func("task_struct"));
  EXPECT_TRUE(k.has_struct("task_struct"));
  EXPECT_FALSE(k.has_struct("schedule"));
  EXPECT_TRUE(k.has_func("schedule"));
  EXPECT_FALSE(k.has_func("bdt_no_such_function_anywhere"));
  EXPECT_EQ(k.func_nargs("bdt_no_such_function_anywhere"), -1);
  int bid = 0, fd = 0;
  EXPECT_FALSE(k.func_attach_target("bdt_no_such_function_anywhere", &bid, &fd));
  // btrfs, built in here or a module in the VM tier's guests: its functions are found either way.
  if (k.btrfs_module() || btf__find_by_name_kind(l.v, "btrfs_get_extent", BTF_KIND_FUNC) > 0) {
    EXPECT_TRUE(k.has_func("btrfs_get_extent"));
    EXPECT_EQ(k.func_param_struct("btrfs_get_extent", 0), "btrfs_inode");
    EXPECT_FALSE(k.member_struct("btrfs_ordered_extent", "inode").empty());
    EXPECT_EQ(k.member_struct("btrfs_ordered_extent", "no_such_member"), "");
  }
}
