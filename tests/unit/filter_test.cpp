// The pure parts of the in-kernel filters' configuration: resolving --mount to
// the filesystem's superblock through /proc/self/mountinfo.
#include <gtest/gtest.h>

#include "live/decode.h"
#include "loader/kallsyms.h"

using namespace bdt::live;

namespace {
// A host with ext4 root, a btrfs filesystem mounted twice (top level and a
// subvolume), a path with a space, and a later mount shadowing an earlier one.
constexpr const char* kMountinfo =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    "45 22 0:41 / /tmp/bdt-mnt rw,relatime shared:30 - btrfs /dev/loop1 "
    "rw,discard=async,space_cache=v2,subvolid=5,subvol=/\n"
    "46 22 0:41 /sub /srv/vm\\040images rw,relatime shared:31 - btrfs /dev/loop1 "
    "rw,space_cache=v2,subvolid=256,subvol=/sub\n"
    "47 45 0:50 / /tmp/bdt-mnt/tmpfs rw - tmpfs tmpfs rw\n"
    "50 22 0:60 / /data rw master:4 propagate_from:2 unbindable - xfs /dev/sdb rw\n"
    "51 22 0:61 / /data rw - btrfs /dev/sdc rw,subvolid=5,subvol=/\n";
}  // namespace

TEST(Mountinfo, ParsesFields) {
  auto m = parse_mountinfo(kMountinfo);
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(m[1].mount_id, 45u);
  EXPECT_EQ(m[1].major, 0u);
  EXPECT_EQ(m[1].minor, 41u);
  EXPECT_EQ(m[1].root, "/");
  EXPECT_EQ(m[1].mount_point, "/tmp/bdt-mnt");
  EXPECT_EQ(m[1].fstype, "btrfs");
  EXPECT_EQ(m[1].source, "/dev/loop1");
  EXPECT_EQ(m[2].mount_point, "/srv/vm images");  // \040 unescaped
  EXPECT_EQ(m[2].root, "/sub");
  EXPECT_EQ(m[4].fstype, "xfs");  // several optional fields before "-"
}

TEST(Mountinfo, RejectsGarbage) {
  EXPECT_FALSE(parse_mountinfo_line("").has_value());
  EXPECT_FALSE(parse_mountinfo_line("x y z").has_value());
  EXPECT_FALSE(parse_mountinfo_line("22 1 81 / / rw - ext4 /dev/sda1 rw").has_value());
  EXPECT_FALSE(parse_mountinfo_line("22 1 8:1 / / rw shared:1 ext4 /dev/sda1").has_value());
}

TEST(Mountinfo, Unescape) {
  EXPECT_EQ(unescape_mountinfo("a\\040b\\011c\\134d"), "a b\tc\\d");
  EXPECT_EQ(unescape_mountinfo("trailing\\04"), "trailing\\04");
  EXPECT_EQ(unescape_mountinfo("\\x"), "\\x");
}

// What an unmount is judged on (MountWatch): one entry per btrfs superblock,
// with every mount point of its subvolumes; other filesystems left out.
TEST(BtrfsMounted, OneEntryPerSuperblock) {
  const auto b = btrfs_mounted(parse_mountinfo(kMountinfo));
  ASSERT_EQ(b.size(), 2u);
  const auto& first = b.at((0ull << 20) | 41);
  EXPECT_EQ(first.source, "/dev/loop1");
  EXPECT_EQ(first.mount_points, (std::vector<std::string>{"/tmp/bdt-mnt", "/srv/vm images"}));
  EXPECT_EQ(b.at(61).mount_points, (std::vector<std::string>{"/data"}));
  // The subvolume unmounted, the top level still mounted: the filesystem is still there.
  const auto after = btrfs_mounted(parse_mountinfo(
      "45 22 0:41 / /tmp/bdt-mnt rw,relatime shared:30 - btrfs /dev/loop1 rw,subvolid=5,subvol=/\n"));
  EXPECT_EQ(after.size(), 1u);
  EXPECT_TRUE(after.count(41));
}

TEST(FindMount, LongestPrefixAndSubvolumes) {
  auto m = parse_mountinfo(kMountinfo);
  // Both mounts of the btrfs filesystem give the same superblock 0:41: the
  // filter then covers every subvolume of it.
  auto a = find_mount(m, "/tmp/bdt-mnt/sub/nocow");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->mount_point, "/tmp/bdt-mnt");
  auto b = find_mount(m, "/srv/vm images/disk.qcow2");
  ASSERT_TRUE(b);
  EXPECT_EQ(kdev_make(a->major, a->minor), kdev_make(b->major, b->minor));
  // Not a path-component prefix.
  auto c = find_mount(m, "/tmp/bdt-mntx/file");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->mount_point, "/");
  // Nested tmpfs below the btrfs mount.
  EXPECT_EQ(find_mount(m, "/tmp/bdt-mnt/tmpfs/f")->fstype, "tmpfs");
  // The exact mount point itself.
  EXPECT_EQ(find_mount(m, "/tmp/bdt-mnt")->mount_id, 45u);
}

TEST(FindMount, LaterMountShadows) {
  auto m = parse_mountinfo(kMountinfo);
  auto d = find_mount(m, "/data/x");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->fstype, "btrfs");
  EXPECT_EQ(d->minor, 61u);
}

TEST(FindMount, ByMountIdWins) {
  auto m = parse_mountinfo(kMountinfo);
  // statx(STATX_MNT_ID) says mount 50 (e.g. a bind mount the prefix rule
  // cannot tell apart).
  auto d = find_mount(m, "/data/x", 50);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->fstype, "xfs");
  // Unknown id: fall back to the prefix rule.
  EXPECT_EQ(find_mount(m, "/data/x", 999)->fstype, "btrfs");
}

TEST(FindMount, SuperblockDevIsKernelEncoding) {
  auto m = parse_mountinfo(kMountinfo);
  auto a = find_mount(m, "/tmp/bdt-mnt");
  // The BPF filter compares against sb->s_dev = MKDEV(0, 41).
  EXPECT_EQ(kdev_make(a->major, a->minor), (0ull << 20) | 41u);
  auto root = find_mount(m, "/etc");
  EXPECT_EQ(kdev_make(root->major, root->minor), (8ull << 20) | 1u);
}

// kprobe targets from /proc/kallsyms: exact names, ThinLTO ".llvm.N" renames,
// never a .cold/.part split part or a data symbol.
TEST(Kallsyms, ExactLlvmAndSplitParts) {
  const std::string text =
      "ffffffffc0a00000 t btrfs_get_extent.cold\t[btrfs]\n"
      "ffffffffc0a01000 t btrfs_get_extent\t[btrfs]\n"
      "ffffffffc0a02000 t add_extent_mapping.llvm.123456789\t[btrfs]\n"
      "ffffffffc0a03000 t free_extent_buffer_stale.part.0\t[btrfs]\n"
      "ffffffffc0a04000 d find_extent_buffer\t[btrfs]\n"
      "ffffffff81000000 T iomap_dio_complete\n"
      "ffffffff81000100 t btrfs_dio_write.llvm.1\n"
      "ffffffff81000200 t btrfs_dio_write\n";
  auto m = bdt::loader::kallsyms_resolve_text(
      text, {"btrfs_get_extent", "add_extent_mapping", "free_extent_buffer_stale",
             "find_extent_buffer", "iomap_dio_complete", "btrfs_dio_write", "missing"});
  EXPECT_EQ(m["btrfs_get_extent"], "btrfs_get_extent");
  EXPECT_EQ(m["add_extent_mapping"], "add_extent_mapping.llvm.123456789");
  EXPECT_EQ(m.count("free_extent_buffer_stale"), 0u);
  EXPECT_EQ(m.count("find_extent_buffer"), 0u);  // a data symbol
  EXPECT_EQ(m["iomap_dio_complete"], "iomap_dio_complete");
  EXPECT_EQ(m["btrfs_dio_write"], "btrfs_dio_write");  // the exact name wins
  EXPECT_EQ(m.count("missing"), 0u);
}
