// --qemu library: command-line parsing, discovery from fake /proc trees,
// the watcher, attribution, per-VM statistics and their rendering.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <limits.h>
#include <nlohmann/json.hpp>
#include <stdlib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "qemu/qemu.h"

namespace fs = std::filesystem;
using namespace bdt;
using namespace bdt::qemu;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void spit(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}
std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

// A copy of tests/fixtures/qemu/proc with real image files to point at.
struct FakeProc {
  fs::path dir, proc, images;
  FakeProc() {
    char tmpl[] = "/tmp/bdt-q-unit-XXXXXX";
    dir = mkdtemp(tmpl);
    proc = dir / "proc";
    images = dir / "images";
    fs::create_directories(images / "btrfs");
    fs::create_directories(images / "ext4");
    for (const char* f : {"btrfs/web-1.qcow2", "btrfs/passed.raw", "btrfs/disk,1.raw", "btrfs/vm4.img",
                          "btrfs/kv,data.raw", "btrfs/j.raw", "ext4/data.raw", "ext4/web-1.log"})
      spit(images / f, "x");
    fs::copy(fs::path(BDT_FIXTURES_DIR) / "qemu/proc", proc,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    for (const auto& pd : fs::directory_iterator(proc)) materialize(pd.path());
  }
  ~FakeProc() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  void materialize(const fs::path& pd) {
    if (fs::exists(pd / "cmdline"))
      spit(pd / "cmdline", replace_all(slurp(pd / "cmdline"), "@IMAGES@", images.string()));
    if (!fs::exists(pd / "links")) return;
    std::istringstream in(slurp(pd / "links"));
    std::string line;
    while (std::getline(in, line)) {
      auto sp = line.find(' ');
      fs::path name = pd / line.substr(0, sp);
      fs::create_directories(name.parent_path());
      fs::create_symlink(replace_all(line.substr(sp + 1), "@IMAGES@", images.string()), name);
    }
  }
  // Files under images/btrfs are "on btrfs", under images/ext4 "on ext4".
  DiscoverOptions opts() const {
    DiscoverOptions o;
    o.proc_root = proc.string();
    std::string b = (images / "btrfs").string(), e = (images / "ext4").string();
    o.stat = [b, e](const std::string& p) {
      FileId id = real_stat(p);
      char rp[PATH_MAX];
      if (id.ok && realpath(p.c_str(), rp)) {
        std::string r = rp;
        if (r.rfind(b + "/", 0) == 0) id.fs_magic = kBtrfsMagic;
        else if (r.rfind(e + "/", 0) == 0) id.fs_magic = 0xEF53;
      }
      return id;
    };
    return o;
  }
};

const Image* find_image(const QemuProcess& p, std::string_view suffix) {
  for (const auto& i : p.images)
    if (i.path.size() >= suffix.size() && i.path.compare(i.path.size() - suffix.size(), suffix.size(), suffix) == 0)
      return &i;
  return nullptr;
}

std::vector<std::string> argv_of(std::initializer_list<const char*> a) { return {a.begin(), a.end()}; }

}  // namespace

// ---- command line -------------------------------------------------------------

TEST(QemuOpts, CommasAndImpliedKey) {
  auto kv = parse_opts("web,,1,debug-threads=on", "guest");
  ASSERT_EQ(kv.size(), 2u);
  EXPECT_EQ(kv[0], (std::pair<std::string, std::string>("guest", "web,1")));
  EXPECT_EQ(kv[1], (std::pair<std::string, std::string>("debug-threads", "on")));
  kv = parse_opts("file=/a,,b.raw,if=virtio,readonly");
  ASSERT_EQ(kv.size(), 3u);
  EXPECT_EQ(kv[0].second, "/a,b.raw");
  EXPECT_EQ(kv[2], (std::pair<std::string, std::string>("readonly", "on")));
  EXPECT_TRUE(parse_opts("").empty());
}

TEST(QemuCmdline, NameForms) {
  EXPECT_EQ(parse_command_line(argv_of({"q", "-name", "guest=a,debug-threads=on"})).vm_name, "a");
  EXPECT_EQ(parse_command_line(argv_of({"q", "-name", "b"})).vm_name, "b");
  EXPECT_EQ(parse_command_line(argv_of({"q", "-name", "c,debug-threads=on"})).vm_name, "c");
  EXPECT_EQ(parse_command_line(argv_of({"q", "--name", "d,process=x"})).vm_name, "d");
  EXPECT_EQ(parse_command_line(argv_of({"q", "-m", "512"})).vm_name, "");
  EXPECT_EQ(parse_command_line(argv_of({"q", "-name"})).vm_name, "");  // dangling option
}

TEST(QemuCmdline, DriveCacheAioAndEscapes) {
  auto cl = parse_command_line(argv_of({"qemu-system-x86_64", "-drive",
                                        "file=/img/a,,b.raw,format=raw,if=virtio,cache=none,aio=native",
                                        "-drive", "file=/img/c.qcow2,cache=writeback", "-drive",
                                        "file=/img/d.raw,cache.direct=on,aio=io_uring,readonly=on",
                                        "-drive", "if=none,id=empty"}));
  ASSERT_EQ(cl.drives.size(), 3u);
  EXPECT_EQ(cl.drives[0].path, "/img/a,b.raw");
  EXPECT_EQ(cl.drives[0].format, "raw");
  EXPECT_EQ(cl.drives[0].cache, "none");
  EXPECT_EQ(cl.drives[0].aio, "native");
  EXPECT_EQ(cl.drives[0].direct, true);
  EXPECT_EQ(cl.drives[1].direct, false);
  EXPECT_EQ(cl.drives[1].aio, "");
  EXPECT_EQ(cl.drives[2].direct, true);
  EXPECT_EQ(cl.drives[2].aio, "io_uring");
  EXPECT_TRUE(cl.drives[2].read_only);
  EXPECT_FALSE(parse_command_line(argv_of({"q", "-drive", "file=/x"})).drives[0].direct.has_value());
  EXPECT_EQ(parse_command_line(argv_of({"q", "-drive", "file=/x,cache=directsync"})).drives[0].direct, true);
  EXPECT_EQ(parse_command_line(argv_of({"q", "-drive", "file=/x,cache=unsafe"})).drives[0].direct, false);
}

TEST(QemuCmdline, BlockdevJsonNestedAndReferenced) {
  auto cl = parse_command_line(argv_of(
      {"q", "-blockdev",
       R"({"driver":"file","filename":"/i/a.qcow2","node-name":"s1","aio":"native","cache":{"direct":true}})",
       "-blockdev", R"({"node-name":"f1","driver":"qcow2","file":"s1","read-only":true})", "-blockdev",
       R"({"driver":"raw","node-name":"f2","cache":{"direct":true},"file":{"driver":"file","filename":"/i/b.raw"}})",
       "-blockdev", R"({"driver":"host_device","filename":"/dev/sdb","node-name":"hd"})", "-blockdev",
       "{not json", "-blockdev",
       R"({"driver":"qcow2","file":{"driver":"throttle","throttle-group":"t","file":{"driver":"file","filename":"/i/c.qcow2","aio":"io_uring"}}})"}));
  ASSERT_EQ(cl.drives.size(), 3u);
  const auto& a = cl.drives[0];
  EXPECT_EQ(a.path, "/i/a.qcow2");
  EXPECT_EQ(a.option, "-blockdev");
  EXPECT_EQ(a.format, "qcow2");
  EXPECT_EQ(a.aio, "native");
  EXPECT_EQ(a.direct, true);
  EXPECT_TRUE(a.read_only);
  EXPECT_EQ(a.node_name, "s1");
  const auto& b = cl.drives[1];
  EXPECT_EQ(b.path, "/i/b.raw");
  EXPECT_EQ(b.format, "raw");
  EXPECT_EQ(b.direct, true);  // inherited from the format node
  const auto& c = cl.drives[2];
  EXPECT_EQ(c.path, "/i/c.qcow2");
  EXPECT_EQ(c.format, "throttle");  // the immediate parent; the qcow2 sits above it
  EXPECT_EQ(c.aio, "io_uring");
}

// A local user's process that looks like QEMU with 64 K -blockdev nodes (a
// file node and a format node naming it, 32 K times): parsed in bounded time
// (the parent lookup was a scan per node: 15.7 s), at most kMaxBlockNodes
// nodes looked at, the rest counted.
TEST(QemuCmdline, ManyBlockNodesBoundedAndLinear) {
  std::vector<std::string> argv{"qemu-system-x86_64"};
  const int pairs = 32768;
  for (int i = 0; i < pairs; ++i) {
    argv.push_back("-blockdev");
    argv.push_back(fmt::format("driver=file,filename=/i/{}.raw,node-name=f{}", i, i));
    argv.push_back("-blockdev");
    argv.push_back(fmt::format("driver=qcow2,file=f{},node-name=q{},cache.direct=on", i, i));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const auto cl = parse_command_line(argv);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  EXPECT_LT(ms.count(), 2000) << "parsing 64 K block nodes took " << ms.count() << " ms";
  ASSERT_EQ(cl.drives.size(), kMaxBlockNodes / 2);  // a file node per format node
  EXPECT_EQ(cl.nodes_dropped, 2u * pairs - kMaxBlockNodes);
  const auto& last = cl.drives.back();
  EXPECT_EQ(last.path, fmt::format("/i/{}.raw", kMaxBlockNodes / 2 - 1));
  EXPECT_EQ(last.format, "qcow2");  // its parent found through the index
  EXPECT_EQ(last.direct, true);
}

TEST(QemuCmdline, BlockdevKeyValueAndDriveJson) {
  auto cl = parse_command_line(argv_of(
      {"q", "-blockdev", "driver=file,filename=/i/k,,v.raw,node-name=kv0,aio=threads,cache.direct=on",
       "-blockdev", "driver=qcow2,file=kv0,node-name=kv0-fmt", "-blockdev",
       "driver=raw,node-name=r,file.driver=file,file.filename=/i/dotted.raw", "-drive",
       // commas inside the JSON are doubled, as QEMU's option syntax requires
       R"(file=json:{"driver":"raw",,"file":{"driver":"file",,"filename":"/i/j.raw",,"aio":"native"}},cache=directsync)",
       "-hda", "/i/hda.img", "-cdrom", "/i/cd.iso"}));
  ASSERT_EQ(cl.drives.size(), 5u);
  // -drive/-hda entries come in command-line order, then -blockdev file nodes
  EXPECT_EQ(cl.drives[0].path, "/i/j.raw");
  EXPECT_EQ(cl.drives[0].option, "-drive");
  EXPECT_EQ(cl.drives[0].aio, "native");
  EXPECT_EQ(cl.drives[0].direct, true);  // cache=directsync on the drive
  EXPECT_EQ(cl.drives[1].path, "/i/hda.img");
  EXPECT_EQ(cl.drives[1].option, "-hda");
  EXPECT_EQ(cl.drives[2].path, "/i/cd.iso");
  EXPECT_TRUE(cl.drives[2].read_only);
  EXPECT_EQ(cl.drives[3].path, "/i/k,v.raw");
  EXPECT_EQ(cl.drives[3].aio, "threads");
  EXPECT_EQ(cl.drives[3].direct, true);
  EXPECT_EQ(cl.drives[3].format, "qcow2");
  EXPECT_EQ(cl.drives[4].path, "/i/dotted.raw");
  EXPECT_EQ(cl.drives[4].format, "raw");
}

TEST(QemuDetect, Names) {
  EXPECT_TRUE(looks_like_qemu("qemu-system-x86", "", ""));
  EXPECT_TRUE(looks_like_qemu("vmproc", "/usr/bin/qemu-system-x86_64", ""));
  EXPECT_TRUE(looks_like_qemu("vmproc", "", "/usr/bin/qemu-system-aarch64"));
  EXPECT_TRUE(looks_like_qemu("qemu-kvm", "/usr/libexec/qemu-kvm", "/usr/libexec/qemu-kvm"));
  EXPECT_FALSE(looks_like_qemu("bash", "/usr/bin/bash", "bash"));
  EXPECT_FALSE(looks_like_qemu("qemu-img", "/usr/bin/qemu-img", "qemu-img"));
  EXPECT_FALSE(looks_like_qemu("", "", ""));
}

TEST(QemuFs, TypeNames) {
  EXPECT_EQ(fs_type_name(kBtrfsMagic), "btrfs");
  EXPECT_EQ(fs_type_name(0xEF53), "ext4");
  EXPECT_EQ(fs_type_name(0x58465342), "xfs");
  EXPECT_EQ(fs_type_name(0x12345678), "0x12345678");
}

// ---- discovery ----------------------------------------------------------------

TEST(QemuDiscover, FakeProcTree) {
  FakeProc fp;
  auto vms = discover(fp.opts());
  ASSERT_EQ(vms.size(), 4u);  // not bash (3001), the kernel thread (2) or the zombie (6001)
  EXPECT_EQ(vms[0].pid, 1001u);
  EXPECT_EQ(vms[1].pid, 2001u);
  EXPECT_EQ(vms[2].pid, 4001u);
  EXPECT_EQ(vms[3].pid, 5001u);

  const auto& web = vms[0];
  EXPECT_EQ(web.vm, "web-1");
  EXPECT_TRUE(web.named);
  EXPECT_EQ(web.comm, "qemu-system-x86");
  EXPECT_EQ(web.exe, "/usr/bin/qemu-system-x86_64");
  EXPECT_EQ(web.start_time, 5000u);
  ASSERT_EQ(web.threads.size(), 4u);
  EXPECT_EQ(web.threads[3].tid, 1004u);
  EXPECT_EQ(web.threads[3].comm, "iou-wrk-1001");
  const Image* q = find_image(web, "/btrfs/web-1.qcow2");
  ASSERT_TRUE(q);
  EXPECT_TRUE(q->on_btrfs);
  EXPECT_EQ(q->reason, "");
  EXPECT_EQ(q->fs_type, "btrfs");
  EXPECT_EQ(q->format, "qcow2");
  EXPECT_EQ(q->aio, "native");
  EXPECT_EQ(q->direct, true);
  EXPECT_TRUE(q->open);
  EXPECT_EQ(q->source, "-blockdev");
  struct stat st {};
  ASSERT_EQ(::stat((fp.images / "btrfs/web-1.qcow2").c_str(), &st), 0);
  EXPECT_EQ(q->dev, st.st_dev);
  EXPECT_EQ(q->ino, st.st_ino);
  const Image* d = find_image(web, "/ext4/data.raw");
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->on_btrfs);
  EXPECT_EQ(d->reason, "not on btrfs (ext4)");
  EXPECT_EQ(d->direct, false);  // fdinfo flags without O_DIRECT
  EXPECT_TRUE(d->open);
  const Image* fdset = find_image(web, "/dev/fdset/3");
  ASSERT_TRUE(fdset);
  EXPECT_FALSE(fdset->on_btrfs);
  EXPECT_NE(fdset->reason.find("file descriptor"), std::string::npos);
  const Image* passed = find_image(web, "/btrfs/passed.raw");
  ASSERT_TRUE(passed);
  EXPECT_EQ(passed->source, "fd");
  EXPECT_TRUE(passed->on_btrfs);
  EXPECT_EQ(passed->direct, true);
  // sockets, eventfds, /dev/kvm, firmware and the write-only log are not images
  EXPECT_FALSE(find_image(web, "web-1.log"));
  EXPECT_EQ(web.images.size(), 4u);
  EXPECT_FALSE(find_image(web, "bios-256k.bin"));
  EXPECT_EQ(web.traced_images(), 2u);

  const auto& db = vms[1];
  EXPECT_EQ(db.vm, "db");
  ASSERT_EQ(db.images.size(), 1u);
  EXPECT_EQ(db.images[0].path, (fp.images / "btrfs/disk,1.raw").string());  // relative to cwd
  EXPECT_TRUE(db.images[0].on_btrfs);
  EXPECT_TRUE(db.images[0].open);
  EXPECT_EQ(db.images[0].cache, "none");
  EXPECT_EQ(db.images[0].aio, "io_uring");
  EXPECT_EQ(db.threads.size(), 3u);

  const auto& v4 = vms[2];
  EXPECT_EQ(v4.vm, "vm4");
  EXPECT_EQ(v4.comm, "vmproc");
  EXPECT_EQ(v4.images.size(), 3u);
  EXPECT_TRUE(find_image(v4, "/btrfs/vm4.img") && find_image(v4, "/btrfs/vm4.img")->on_btrfs);
  ASSERT_TRUE(find_image(v4, "/btrfs/kv,data.raw"));
  EXPECT_EQ(find_image(v4, "/btrfs/kv,data.raw")->aio, "threads");
  ASSERT_TRUE(find_image(v4, "/btrfs/j.raw"));
  EXPECT_EQ(find_image(v4, "/btrfs/j.raw")->direct, true);
  EXPECT_FALSE(find_image(v4, "/btrfs/j.raw")->open);

  const auto& anon = vms[3];
  EXPECT_EQ(anon.vm, "pid-5001");
  EXPECT_FALSE(anon.named);
  ASSERT_EQ(anon.images.size(), 1u);
  EXPECT_FALSE(anon.images[0].on_btrfs);
  EXPECT_EQ(anon.images[0].reason, "cannot stat: No such file or directory");
  EXPECT_EQ(anon.traced_images(), 0u);

  auto text = describe(vms);
  EXPECT_NE(text.find("VM web-1 (pid 1001, 4 threads): 2 of 4 images traced"), std::string::npos) << text;
  EXPECT_NE(text.find("not on btrfs (ext4)"), std::string::npos);
}

TEST(QemuDiscover, InspectNotQemu) {
  FakeProc fp;
  EXPECT_EQ(inspect(1001, fp.opts()).vm, "web-1");
  try {
    inspect(3001, fp.opts());
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "process 3001 (bash, /usr/bin/bash) is not a QEMU process (qemu-system-* or qemu-kvm)");
  }
  try {
    inspect(2, fp.opts());
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("kernel thread"), std::string::npos) << e.what();
  }
  try {
    inspect(6001, fp.opts());
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "process 6001 (qemu-system-x86) has exited");
  }
  try {
    inspect(999999, fp.opts());
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "no process 999999");
  }
}

TEST(QemuDiscover, RealProc) {
  // The real /proc: this test binary is not QEMU, and scanning never throws.
  EXPECT_NO_THROW(discover());
  EXPECT_THROW(inspect(static_cast<uint32_t>(getpid())), InputError);
  // real_stat: a file in /tmp, with its true filesystem type
  FakeProc fp;
  FileId id = real_stat((fp.images / "ext4/data.raw").string());
  ASSERT_TRUE(id.ok);
  EXPECT_TRUE(id.regular);
  EXPECT_NE(id.fs_magic, 0u);
  EXPECT_FALSE(real_stat((fp.images / "nope").string()).ok);
  EXPECT_EQ(real_stat((fp.images / "nope").string()).error, ENOENT);
}

// A real QEMU (no guest: -machine none, paused) with one image opened
// O_DIRECT through -blockdev and one buffered through -drive.
TEST(QemuDiscover, RealQemuProcess) {
  const char* qemu = "/usr/bin/qemu-system-x86_64";
  if (access(qemu, X_OK) != 0) GTEST_SKIP() << qemu << " not installed";
  FakeProc fp;  // only for its temporary directory
  const std::string a = (fp.images / "btrfs/web-1.qcow2").string(), b = (fp.images / "ext4/data.raw").string();
  fs::resize_file(a, 1 << 20);
  fs::resize_file(b, 1 << 20);
  const std::string bd = R"({"driver":"file","filename":")" + a +
                         R"(","node-name":"s","aio":"threads","cache":{"direct":true}})";
  const std::string dr = "file=" + b + ",if=none,format=raw,cache=writeback";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen("/dev/null", "w", stdout);
    freopen((fp.dir / "qemu.log").c_str(), "w", stderr);
    execl(qemu, qemu, "-name", "guest=bdt-q-unit,debug-threads=on", "-machine", "none", "-nodefaults",
          "-display", "none", "-S", "-blockdev", bd.c_str(), "-blockdev",
          R"({"driver":"raw","node-name":"f","file":"s"})", "-drive", dr.c_str(), (char*)nullptr);
    _exit(127);
  }
  std::optional<QemuProcess> found;
  for (int i = 0; i < 100 && !found; ++i) {
    usleep(100000);
    for (auto& p : discover())
      if (p.pid == static_cast<uint32_t>(pid) && p.images.size() == 2 && p.images[0].open &&
          p.images[1].open)
        found = p;
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  ASSERT_TRUE(found) << slurp(fp.dir / "qemu.log");
  EXPECT_EQ(found->vm, "bdt-q-unit");
  EXPECT_EQ(found->comm, "qemu-system-x86");
  EXPECT_EQ(found->exe, qemu);
  EXPECT_GE(found->threads.size(), 1u);
  const Image* ia = find_image(*found, "web-1.qcow2");
  const Image* ib = find_image(*found, "data.raw");
  ASSERT_TRUE(ia && ib);
  EXPECT_EQ(ia->direct, true);   // O_DIRECT in fdinfo
  EXPECT_EQ(ia->aio, "threads");
  EXPECT_EQ(ib->direct, false);  // cache=writeback: buffered
  EXPECT_EQ(ib->cache, "writeback");
  // /tmp here is not btrfs (if it ever is, the reason is empty and on_btrfs true)
  FileId id = real_stat(a);
  EXPECT_EQ(ia->on_btrfs, id.fs_magic == kBtrfsMagic);
  if (!ia->on_btrfs) {
    EXPECT_EQ(ia->reason, "not on btrfs (" + fs_type_name(id.fs_magic) + ")");
  }
}

namespace {
bdt::Event ev_of_file(uint32_t pid, uint64_t dev, uint64_t ino) {
  bdt::Event e;
  e.pid = e.tid = pid;
  e.dev = dev;
  e.ino = ino;
  return e;
}
}  // namespace

// ---- watcher ------------------------------------------------------------------

TEST(QemuWatcher, AddedRemovedReusedChanged) {
  FakeProc fp;
  Watcher w(fp.opts(), 500);
  auto d = w.poll(1000);
  EXPECT_EQ(d.added.size(), 4u);
  EXPECT_TRUE(d.removed.empty());
  EXPECT_EQ(w.pids(), (std::vector<uint32_t>{1001, 2001, 4001, 5001}));
  EXPECT_TRUE(w.poll(1200).empty());  // within the interval: no scan
  EXPECT_EQ(w.scans(), 1u);
  EXPECT_TRUE(w.poll(1500).empty());  // scanned, nothing changed
  EXPECT_EQ(w.scans(), 2u);

  // 5001 exits; a new QEMU (copy of 2001) starts as 2101
  fs::remove_all(fp.proc / "5001");
  fs::copy(fp.proc / "2001", fp.proc / "2101", fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  d = w.poll(2000);
  ASSERT_EQ(d.removed.size(), 1u);
  EXPECT_EQ(d.removed[0].pid, 5001u);
  ASSERT_EQ(d.added.size(), 1u);
  EXPECT_EQ(d.added[0].pid, 2101u);
  EXPECT_EQ(d.added[0].vm, "db");

  EXPECT_EQ(describe(d), "VM pid-5001 (pid 5001) exited\nVM db (pid 2101) started: 1 of 1 images traced\n");
  Attributor a;
  for (const auto& [pid, p] : w.current()) a.add(p);
  EXPECT_TRUE(a.knows_pid(2101));
  // pid 4001 reused by another process (new start time)
  auto stat = slurp(fp.proc / "4001/stat");
  spit(fp.proc / "4001/stat", replace_all(stat, " 8000 ", " 8800 "));
  // 1001 hot-unplugs its fd-passed disk
  fs::remove(fp.proc / "1001/fd/22");
  d = w.scan();
  ASSERT_EQ(d.removed.size(), 1u);
  EXPECT_EQ(d.removed[0].pid, 4001u);
  EXPECT_EQ(d.removed[0].start_time, 8000u);
  ASSERT_EQ(d.added.size(), 1u);
  EXPECT_EQ(d.added[0].start_time, 8800u);
  ASSERT_EQ(d.changed.size(), 1u);
  EXPECT_EQ(d.changed[0].pid, 1001u);
  EXPECT_EQ(d.changed[0].traced_images(), 1u);
  // the attributor follows the diff: 1001's unplugged image is no longer labelled
  struct stat st {};
  ASSERT_EQ(::stat((fp.images / "btrfs/passed.raw").c_str(), &st), 0);
  Event e = ev_of_file(1, st.st_dev, st.st_ino);
  a.apply(e);
  EXPECT_EQ(e.image, (fp.images / "btrfs/passed.raw").string());
  a.update(d);
  a.apply(e);
  EXPECT_TRUE(e.image.empty());
  EXPECT_TRUE(a.knows_pid(4001));
  EXPECT_TRUE(describe(d).find("VM vm4 (pid 4001) exited\nVM vm4 (pid 4001) started") == 0) << describe(d);

  // 2001 ("db") is exiting: its memory is gone (empty command line, no executable) but it is
  // not a zombie yet. It exits under its name, not as a new nameless VM "pid-2001".
  spit(fp.proc / "2001/cmdline", "");
  fs::remove(fp.proc / "2001/exe");
  d = w.scan();
  EXPECT_TRUE(d.added.empty());
  EXPECT_TRUE(d.changed.empty()) << describe(d);
  ASSERT_EQ(d.removed.size(), 1u);
  EXPECT_EQ(d.removed[0].pid, 2001u);
  EXPECT_EQ(describe(d), "VM db (pid 2001) exited\n");
}

TEST(QemuWatcher, NothingRunning) {
  char tmpl[] = "/tmp/bdt-q-empty-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  DiscoverOptions o;
  o.proc_root = dir;
  Watcher w(o, 100);
  EXPECT_TRUE(w.poll(0).empty());
  EXPECT_TRUE(w.current().empty());
  o.proc_root = dir + "/does-not-exist";
  EXPECT_TRUE(discover(o).empty());
  fs::remove_all(dir);
}

// ---- attribution --------------------------------------------------------------

namespace {
QemuProcess vm_with(uint32_t pid, const std::string& name,
                    std::vector<std::tuple<std::string, uint64_t, uint64_t, bool>> imgs) {
  QemuProcess p;
  p.pid = pid;
  p.vm = name;
  for (auto& [path, dev, ino, btrfs] : imgs) {
    Image i;
    i.path = path;
    i.dev = dev;
    i.ino = ino;
    i.on_btrfs = btrfs;
    p.images.push_back(i);
  }
  return p;
}
Event ev_of(uint32_t pid, uint64_t dev, uint64_t ino, Payload body = DioBegin{}, uint64_t ts = 0,
            uint32_t tid = 0) {
  Event e;
  e.pid = pid;
  e.tid = tid ? tid : pid;
  e.dev = dev;
  e.ino = ino;
  e.ts_ns = ts;
  e.body = body;
  e.type = std::holds_alternative<DioEnd>(body) ? EventType::DioEnd : EventType::DioBegin;
  return e;
}
}  // namespace

TEST(QemuAttribution, EventsAndFindings) {
  Attributor a;
  a.add(vm_with(100, "web-1", {{"/img/web.raw", 45, 257, true}, {"/ext4/data.raw", 8, 12, false}}));
  a.add(vm_with(200, "db", {{"/img/db.raw", 45, 300, true}}));
  EXPECT_EQ(a.vms(), 2u);

  Event e = ev_of(100, 45, 257);
  a.apply(e);
  EXPECT_EQ(e.vm, "web-1");
  EXPECT_EQ(e.image, "/img/web.raw");
  // same inode number on another subvolume (other st_dev): not the image
  e = ev_of(100, 46, 257);
  a.apply(e);
  EXPECT_EQ(e.vm, "web-1");
  EXPECT_EQ(e.image, "");
  // not-on-btrfs image is not attributed by (dev, ino)
  e = ev_of(7, 8, 12);
  a.apply(e);
  EXPECT_EQ(e.vm, "");
  // a kernel worker completing I/O on db's image
  e = ev_of(55, 45, 300);
  a.apply(e);
  EXPECT_EQ(e.vm, "db");
  EXPECT_EQ(e.image, "/img/db.raw");
  // unrelated process, unrelated file: stale labels are cleared
  e.pid = 9;
  e.ino = 999;
  a.apply(e);
  EXPECT_TRUE(e.vm.empty() && e.image.empty());

  // views stay valid after the VM is removed
  Event kept = ev_of(100, 45, 257);
  a.apply(kept);
  a.remove(100);
  EXPECT_FALSE(a.knows_pid(100));
  a.add(vm_with(101, "other", {{"/img/other.raw", 45, 400, true}}));
  EXPECT_EQ(kept.vm, "web-1");
  EXPECT_EQ(kept.image, "/img/web.raw");
  e = ev_of(100, 45, 257);
  a.apply(e);
  EXPECT_TRUE(e.vm.empty());
  // re-adding the same name interns once
  size_t n = a.strings();
  a.add(vm_with(200, "db", {{"/img/db.raw", 45, 300, true}}));
  EXPECT_EQ(a.strings(), n);

  Finding f;
  f.pid = 200;
  f.dev = 45;
  f.ino = 300;
  a.apply(f);
  EXPECT_EQ(f.vm, "db");
  EXPECT_EQ(f.image, "/img/db.raw");
  // raised on a worker's event with no inode: the evidence names the VM
  Finding g;
  g.pid = 55;
  g.evidence.push_back(ev_of(200, 45, 300));
  a.apply(g);
  EXPECT_EQ(g.vm, "db");
  EXPECT_EQ(g.image, "/img/db.raw");
  Finding h;
  h.pid = 1;
  a.apply(h);
  EXPECT_TRUE(h.vm.empty());
  // reported after its VM exited (gathered, or judged at the end): the labels
  // its events had when they happened stay
  Finding late;
  late.pid = 100;
  late.dev = 45;
  late.ino = 257;
  late.vm = "web-1";
  late.image = "/img/web.raw";
  a.apply(late);
  EXPECT_EQ(late.vm, "web-1");
  EXPECT_EQ(late.image, "/img/web.raw");
  Finding late2;
  late2.pid = 100;
  late2.evidence.push_back(kept);
  a.apply(late2);
  EXPECT_EQ(late2.vm, "web-1");
  EXPECT_EQ(late2.image, "/img/web.raw");
}

// ---- statistics ---------------------------------------------------------------

TEST(QemuHistogram, Buckets) {
  EXPECT_EQ(Log2Histogram::bucket_of(0), 0);
  EXPECT_EQ(Log2Histogram::bucket_of(1), 0);
  EXPECT_EQ(Log2Histogram::bucket_of(2), 1);
  EXPECT_EQ(Log2Histogram::bucket_of(1023), 9);
  EXPECT_EQ(Log2Histogram::bucket_of(1024), 10);
  EXPECT_EQ(Log2Histogram::bucket_of(~0ull), 63);
  EXPECT_EQ(Log2Histogram::bucket_low(10), 1024u);
  EXPECT_EQ(Log2Histogram::bucket_high(10), 2047u);
  EXPECT_EQ(Log2Histogram::bucket_high(63), ~0ull);

  Log2Histogram h;
  EXPECT_EQ(h.percentile(0.5), 0u);
  for (int i = 0; i < 98; ++i) h.add(1000);  // bucket 9: [512, 1023]
  h.add(100000);                              // bucket 16
  h.add(5000000);                             // bucket 22
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.percentile(0.5), 1023u);
  EXPECT_EQ(h.percentile(0.98), 1023u);
  EXPECT_EQ(h.percentile(0.99), 131071u);
  EXPECT_EQ(h.percentile(1.0), 5000000u);  // capped at the exact max
  EXPECT_EQ(h.max(), 5000000u);

  Log2Histogram k;  // pre-bucketed, as the kernel will provide
  k.add_bucket(20, 3);
  k.add_bucket(99, 1);  // clamped to the last bucket
  k.add_bucket(5, 0);
  EXPECT_EQ(k.count(), 4u);
  EXPECT_EQ(k.percentile(0.5), Log2Histogram::bucket_high(20));
  h.merge(k);
  EXPECT_EQ(h.count(), 104u);
}

namespace {
Event labelled(Event e, std::string_view vm, std::string_view img) {
  e.vm = vm;
  e.image = img;
  return e;
}
DioBegin begin(uint64_t pos, uint64_t count, bool write, bool aio = false, uint64_t done_before = 0) {
  DioBegin b;
  b.pos = pos;
  b.count = count;
  b.write = write;
  b.aio = aio;
  b.done_before = done_before;
  return b;
}
DioEnd end(uint64_t pos, int64_t ret, int32_t error = 0, std::optional<bool> write = std::nullopt) {
  DioEnd d;
  d.pos = pos;
  d.ret = ret;
  d.error = error;
  d.write = write;
  return d;
}
}  // namespace

TEST(QemuStats, SyncAioShortErrorsFallback) {
  StatsCollector sc;
  const std::string_view W = "web-1", WI = "/img/web.raw", D = "db", DI = "/img/db.raw";
  // sync write, 4 KiB, 3 us
  sc.on_event(labelled(ev_of(100, 45, 257, begin(0, 4096, true), 1000, 101), W, WI));
  sc.on_event(labelled(ev_of(100, 45, 257, end(0, 4096), 4000, 101), W, WI));
  // sync read, short read at EOF is not a short write; 10 us
  sc.on_event(labelled(ev_of(100, 45, 257, begin(8192, 4096, false), 5000, 101), W, WI));
  sc.on_event(labelled(ev_of(100, 45, 257, end(8192, 100), 15000, 101), W, WI));
  // two aio writes in flight on another thread; ends carry the submitter and
  // either the request's pos or the advanced ki_pos
  sc.on_event(labelled(ev_of(200, 45, 300, begin(0, 65536, true, true), 20000, 202), D, DI));
  sc.on_event(labelled(ev_of(200, 45, 300, begin(65536, 65536, true, true), 21000, 202), D, DI));
  sc.on_event(labelled(ev_of(200, 45, 300, end(131072, 65536), 121000, 202), D, DI));  // advanced pos
  sc.on_event(labelled(ev_of(200, 45, 300, end(0, 32768), 220000, 202), D, DI));       // short
  // failed write
  sc.on_event(labelled(ev_of(200, 45, 300, begin(0, 512, true, true), 300000, 202), D, DI));
  sc.on_event(labelled(ev_of(200, 45, 300, end(0, -5, -5), 301000, 202), D, DI));
  // end without begin, direction known
  sc.on_event(labelled(ev_of(200, 45, 300, end(0, 4096, 0, true), 302000, 203), D, DI));
  // continued sync write: ret includes done_before
  sc.on_event(labelled(ev_of(100, 45, 257, begin(4096, 4096, true, false, 4096), 400000, 101), W, WI));
  sc.on_event(labelled(ev_of(100, 45, 257, end(4096, 8192), 401000, 101), W, WI));
  // buffered writes on the image: ordered extents without DIRECT (a worker's
  // event labelled by the image); DIRECT ones and other types are not counted
  Ordered oe;
  oe.file_offset = 0;
  oe.len = 8192;
  oe.flags = oef::REGULAR;
  Event oev = labelled(ev_of(77, 45, 300, oe, 303000, 77), D, DI);
  oev.type = EventType::OeAdd;
  sc.on_event(oev);
  oev.type = EventType::OeFinish;
  sc.on_event(oev);
  oe.flags = oef::REGULAR | oef::DIRECT;
  oev.body = oe;
  oev.type = EventType::OeAdd;
  sc.on_event(oev);
  // unlabelled events (not a VM) are ignored
  sc.on_event(ev_of(9, 45, 999, begin(0, 4096, true), 500000, 9));

  Finding f;
  f.detector = "dio-buffered-fallback";
  f.vm = "db";
  f.image = "/img/db.raw";
  sc.on_finding(f);
  f.detector = "dio-short-write";
  sc.on_finding(f);
  Finding none;
  none.detector = "em-merge-race";
  sc.on_finding(none);

  auto rows = sc.total();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].vm, "db");  // sorted by VM name
  const auto& db = rows[0].s;
  EXPECT_EQ(db.writes, 4u);  // completed: 2 aio, 1 failed, 1 end without begin
  EXPECT_EQ(db.reads, 0u);
  EXPECT_EQ(db.write_bytes, 65536u + 32768u + 4096u);
  EXPECT_EQ(db.errors, 1u);
  EXPECT_EQ(db.short_writes, 1u);
  EXPECT_EQ(db.buffered_fallback, 1u);
  EXPECT_EQ(db.buffered_extents, 1u);
  EXPECT_EQ(db.buffered_bytes, 8192u);
  EXPECT_EQ(db.findings.at("dio-short-write"), 1u);
  EXPECT_EQ(db.write_lat.count(), 3u);
  EXPECT_EQ(db.write_lat.max(), 200000u);
  const auto& web = rows[1].s;
  EXPECT_EQ(web.writes, 2u);
  EXPECT_EQ(web.reads, 1u);
  EXPECT_EQ(web.write_bytes, 8192u);
  EXPECT_EQ(web.read_bytes, 100u);
  EXPECT_EQ(web.short_writes, 0u);
  EXPECT_EQ(web.read_lat.max(), 10000u);
  EXPECT_EQ(web.write_lat.percentile(0.5), 1023u);  // 1000 ns and 3000 ns: the lower is in [512, 1023]
  EXPECT_EQ(web.write_lat.max(), 3000u);
  auto c = sc.counters();
  EXPECT_EQ(c.inflight, 0u);
  EXPECT_EQ(c.unmatched_ends, 1u);
  EXPECT_EQ(c.evicted, 0u);

  auto by_req = sc.total(SortBy::Requests);
  EXPECT_EQ(by_req[0].vm, "db");  // 4 requests vs 3
  sc.on_event(labelled(ev_of(100, 45, 257, begin(0, 1, false), 600000, 101), W, WI));
  EXPECT_EQ(sc.total(SortBy::Requests)[0].vm, "db");  // a request counts when it completes
  sc.on_event(labelled(ev_of(100, 45, 257, end(0, 1), 600100, 101), W, WI));
  EXPECT_EQ(sc.total(SortBy::Requests)[0].vm, "db");  // 4 each: ties keep the name order
  sc.on_event(labelled(ev_of(100, 45, 257, begin(0, 1, false), 600200, 101), W, WI));
  sc.on_event(labelled(ev_of(100, 45, 257, end(0, 1), 600300, 101), W, WI));
  EXPECT_EQ(sc.total(SortBy::Requests)[0].vm, "web-1");
}

TEST(QemuStats, IntervalResetsTotalKeeps) {
  StatsCollector sc;
  sc.on_event(labelled(ev_of(1, 1, 1, begin(0, 10, false), 0, 1), "a", "/a"));
  sc.on_event(labelled(ev_of(1, 1, 1, end(0, 10), 10, 1), "a", "/a"));
  auto i1 = sc.take_interval();
  ASSERT_EQ(i1.size(), 1u);
  EXPECT_EQ(i1[0].s.reads, 1u);
  auto i2 = sc.take_interval();
  ASSERT_EQ(i2.size(), 1u);  // the row stays, zeroed
  EXPECT_EQ(i2[0].s.reads, 0u);
  EXPECT_EQ(i2[0].s.read_lat.count(), 0u);
  sc.on_event(labelled(ev_of(2, 1, 2, begin(0, 10, true), 20, 2), "b", "/b"));
  sc.on_event(labelled(ev_of(2, 1, 2, begin(0, 10, true), 30, 3), "b", "/b"));
  sc.on_event(labelled(ev_of(2, 1, 2, end(0, 10), 40, 2), "b", "/b"));
  sc.on_event(labelled(ev_of(2, 1, 2, end(0, 10), 50, 3), "b", "/b"));
  auto i3 = sc.take_interval(SortBy::Requests);
  ASSERT_EQ(i3.size(), 2u);
  EXPECT_EQ(i3[0].vm, "b");
  EXPECT_EQ(sc.total()[0].s.reads, 1u);
  sc.on_latency("b", "/b", true, 12345);
  sc.add_buckets("b", "/b", false, 14, 7);
  auto t = sc.total();
  EXPECT_EQ(t[1].s.write_lat.count(), 3u);  // two measured pairs + one given latency
  EXPECT_EQ(t[1].s.read_lat.count(), 7u);
}

// io_uring first tries without blocking; -EAGAIN sends the request to an
// io-wq worker (same tgid) that submits it again (seen live on 6.x).
TEST(QemuStats, NowaitAgainIsNotAnError) {
  StatsCollector sc;
  sc.on_event(labelled(ev_of(7, 40, 258, begin(0, 262144, false, true), 1000, 7), "vm", "/i"));
  sc.on_event(labelled(ev_of(7, 40, 258, end(0, -11, -11, false), 2000, 7), "vm", "/i"));
  sc.on_event(labelled(ev_of(7, 40, 258, begin(0, 262144, false, true), 3000, 19), "vm", "/i"));
  sc.on_event(labelled(ev_of(7, 40, 258, end(262144, 262144, 0, false), 53000, 19), "vm", "/i"));
  sc.on_event(labelled(ev_of(7, 40, 258, end(0, -11, -11, true), 60000, 7), "vm", "/i"));  // no begin
  auto r = sc.total()[0].s;
  EXPECT_EQ(r.again, 2u);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_EQ(r.reads, 1u);
  EXPECT_EQ(r.writes, 0u);
  EXPECT_EQ(r.read_bytes, 262144u);
  EXPECT_EQ(r.read_lat.count(), 1u);
  EXPECT_EQ(r.read_lat.max(), 50000u);
  EXPECT_EQ(sc.counters().inflight, 0u);
}

TEST(QemuStats, BoundedInflightEvicts) {
  StatsCollector sc(16);  // 2 sets of 8
  for (uint32_t i = 0; i < 1000; ++i)
    sc.on_event(labelled(ev_of(1, 1, 1, begin(i * 4096ull, 4096, true, true), i, 1), "a", "/a"));
  auto c = sc.counters();
  EXPECT_EQ(c.inflight_cap, 16u);
  EXPECT_LE(c.inflight, 16u);
  EXPECT_EQ(c.inflight + c.evicted, 1000u);
  // the newest survive: the last request still completes with a latency
  sc.on_event(labelled(ev_of(1, 1, 1, end(999 * 4096ull, 4096), 2000, 1), "a", "/a"));
  EXPECT_EQ(sc.total()[0].s.write_lat.count(), 1u);
  EXPECT_EQ(sc.total()[0].s.write_lat.max(), 1001u);
  // the oldest were evicted: its end is unmatched
  sc.on_event(labelled(ev_of(1, 1, 1, end(0, 4096), 2001, 1), "a", "/a"));
  EXPECT_EQ(sc.counters().unmatched_ends, 1u);
}

TEST(QemuRender, TextAndJson) {
  StatsCollector sc;
  sc.on_event(labelled(ev_of(1, 1, 1, begin(0, 1 << 20, true), 0, 1), "web-1", "/var/lib/img/web-1.raw"));
  sc.on_event(labelled(ev_of(1, 1, 1, end(0, 1 << 20), 1500000, 1), "web-1", "/var/lib/img/web-1.raw"));
  sc.on_event(labelled(ev_of(2, 1, 2, begin(0, 512, false), 0, 2), "db", ""));
  Finding f;
  f.detector = "dio-buffered-fallback";
  f.vm = "db";
  sc.on_finding(f);
  auto text = render_text(sc.total(), "per-VM DIO");
  std::istringstream in(text);
  std::string title, header, l1, l2;
  std::getline(in, title);
  std::getline(in, header);
  std::getline(in, l1);
  std::getline(in, l2);
  EXPECT_EQ(title, "per-VM DIO");
  EXPECT_EQ(header.rfind("VM     IMAGE", 0), 0u) << text;
  EXPECT_EQ(l1.rfind("db     (other files)", 0), 0u) << text;
  EXPECT_EQ(l2.rfind("web-1  /var/lib/img/web-1.raw", 0), 0u) << text;
  // right-aligned numeric columns end at the same offset
  EXPECT_EQ(header.find("WBYTES") + 6, l2.find("1.0M") + 4) << text;
  EXPECT_NE(l2.find("1.5ms"), std::string::npos) << text;  // p50: bucket high capped at the max
  EXPECT_NE(l1.find("dio-buffered-fallback=1"), std::string::npos);
  EXPECT_EQ(render_text({}), "(no VM I/O)\n");

  auto j = nlohmann::json::parse(render_json(sc.total(), 5));
  EXPECT_EQ(j["type"], "vm_stats");
  EXPECT_EQ(j["interval_s"], 5);
  ASSERT_EQ(j["vms"].size(), 2u);
  EXPECT_EQ(j["vms"][1]["vm"], "web-1");
  EXPECT_EQ(j["vms"][1]["write_bytes"], 1 << 20);
  EXPECT_EQ(j["vms"][1]["write_latency"]["count"], 1);
  EXPECT_EQ(j["vms"][1]["write_latency"]["max_ns"], 1500000);
  EXPECT_EQ(j["vms"][1]["write_latency"]["buckets"][0][0], 1 << 20);
  EXPECT_EQ(j["vms"][0]["buffered_fallback_findings"], 1);
  EXPECT_EQ(j["vms"][0]["buffered_bytes"], 0);
  EXPECT_FALSE(nlohmann::json::parse(render_json({})).contains("interval_s"));
  // The time the numbers were taken: the events' clock, and UTC when the offset is known.
  EXPECT_FALSE(nlohmann::json::parse(render_json({})).contains("ts_ns"));
  auto t = nlohmann::json::parse(render_json({}, 5, nullptr, 5'000'000'000, 1795323001'123456789 - 5'000'000'000));
  EXPECT_EQ(t["ts_ns"], 5'000'000'000u);
  EXPECT_EQ(t["wall_time"], "2026-11-22T04:50:01.123456Z");
  EXPECT_FALSE(nlohmann::json::parse(render_json({}, 5, nullptr, 5'000'000'000, 0)).contains("wall_time"));
}

TEST(QemuTracker, EndToEnd) {
  FakeProc fp;
  Tracker::Options o;
  o.discover = fp.opts();
  o.poll_ms = 1000;
  Tracker t(o);
  auto d = t.poll(0);
  EXPECT_EQ(d.added.size(), 4u);
  EXPECT_EQ(t.pids(), (std::vector<uint32_t>{1001, 2001, 4001, 5001}));
  struct stat st {};
  ASSERT_EQ(::stat((fp.images / "btrfs/web-1.qcow2").c_str(), &st), 0);
  Event b = ev_of(1001, st.st_dev, st.st_ino, begin(0, 4096, true), 100, 1004);  // io-wq worker
  Event e = ev_of(1001, st.st_dev, st.st_ino, end(0, 4096), 2100, 1004);
  t.on_event(b);
  t.on_event(e);
  EXPECT_EQ(b.vm, "web-1");
  EXPECT_EQ(e.image, (fp.images / "btrfs/web-1.qcow2").string());
  Event other = ev_of(3001, st.st_dev, 999, begin(0, 4096, true), 100, 3001);  // bash, another file
  t.on_event(other);
  EXPECT_TRUE(other.vm.empty());
  Finding f;
  f.detector = "dio-short-write";
  f.pid = 1001;
  f.dev = st.st_dev;
  f.ino = st.st_ino;
  t.on_finding(f);
  EXPECT_EQ(f.vm, "web-1");
  auto rows = t.stats().total();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].s.writes, 1u);
  EXPECT_EQ(rows[0].s.write_lat.max(), 2000u);
  EXPECT_EQ(rows[0].s.findings.at("dio-short-write"), 1u);
  EXPECT_TRUE(t.poll(500).empty());  // not due

  // --pid X --qemu
  Tracker::Options only = o;
  only.discover.only_pids = {2001};
  Tracker t2(only);
  EXPECT_EQ(t2.poll(0).added.size(), 1u);
  EXPECT_EQ(t2.pids(), (std::vector<uint32_t>{2001}));
  only.discover.only_pids = {2001, 3001};
  EXPECT_THROW(Tracker{only}, InputError);
}

// ---- latency histograms computed in the kernel ----------------------------------

TEST(QemuHistogram, KernelBucketsToPercentiles) {
  // As the kernel hands them over: counts per log2 bucket, max known exactly.
  std::vector<uint64_t> c(kLatencyBuckets, 0);
  c[12] = 90;  // [4096, 8191] ns
  c[17] = 9;   // [131072, 262143] ns
  c[25] = 1;   // [33554432, 67108863] ns
  Log2Histogram h;
  h.add_counts(c, 40'000'000);
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.percentile(0.5), 8191u);     // rank 50 in bucket 12: its upper bound
  EXPECT_EQ(h.percentile(0.90), 8191u);    // rank 90: still bucket 12
  EXPECT_EQ(h.percentile(0.91), 262143u);  // rank 91: bucket 17
  EXPECT_EQ(h.percentile(0.99), 262143u);  // rank 99: bucket 17
  EXPECT_EQ(h.percentile(1.0), 40'000'000u);  // rank 100: bucket 25, capped at the max
  EXPECT_EQ(h.max(), 40'000'000u);
  // a single sample: every percentile is that sample's bucket bound, capped at max
  Log2Histogram one;
  std::vector<uint64_t> o(kLatencyBuckets, 0);
  o[0] = 1;
  one.add_counts(o, 1);
  EXPECT_EQ(one.percentile(0.5), 1u);
  EXPECT_EQ(one.percentile(0.99), 1u);
  // empty counts change nothing, not even max
  Log2Histogram e;
  e.add_counts(std::vector<uint64_t>(kLatencyBuckets, 0), 123);
  EXPECT_EQ(e.count(), 0u);
  EXPECT_EQ(e.max(), 0u);
  EXPECT_EQ(e.percentile(0.5), 0u);
  // the last kernel bucket holds everything larger: it is a bucket like any other
  std::vector<uint64_t> big(kLatencyBuckets, 0);
  big[kLatencyBuckets - 1] = 2;
  Log2Histogram b;
  b.add_counts(big, ~0ull >> 8);
  EXPECT_EQ(b.percentile(0.5), Log2Histogram::bucket_high(kLatencyBuckets - 1));
}

TEST(QemuTracker, KernelLatencyDeltasAndExit) {
  FakeProc fp;
  Tracker::Options o;
  o.discover = fp.opts();
  Tracker t(o);
  struct stat st {};
  ASSERT_EQ(::stat((fp.images / "btrfs/web-1.qcow2").c_str(), &st), 0);
  const std::string img = (fp.images / "btrfs/web-1.qcow2").string();
  LatencyHists kernel;
  kernel.capacity = 64;
  kernel.hists.reserve(8);  // hist() hands out references
  auto hist = [&](uint32_t pid, bool write, uint64_t ino) -> LatencyHist& {
    for (auto& h : kernel.hists)
      if (h.pid == pid && h.write == write && h.ino == ino) return h;
    LatencyHist h;
    h.pid = pid;
    h.write = write;
    h.dev = st.st_dev;
    h.ino = ino;
    h.buckets.assign(kLatencyBuckets, 0);
    kernel.hists.push_back(h);
    return kernel.hists.back();
  };
  int reads = 0;
  t.set_latency_source([&] {
    ++reads;
    return kernel;
  });
  EXPECT_TRUE(t.stats().kernel_counts());
  t.poll(0);

  // the events of a request no longer count it: the kernel's counts do
  Event b = ev_of(1001, st.st_dev, st.st_ino, begin(0, 4096, true), 100, 1004);
  Event e = ev_of(1001, st.st_dev, st.st_ino, end(0, 4096), 999'999'100, 1004);
  t.on_event(b);
  t.on_event(e);
  EXPECT_EQ(b.vm, "web-1");  // still labelled
  auto& w = hist(1001, true, st.st_ino);
  w.buckets[10] = 3;  // [1024, 2047]
  w.buckets[20] = 1;  // [1 Mi, 2 Mi)
  w.max_ns = 1'500'000;
  w.sum_ns = 3 * 1500 + 1'500'000;
  w.requests = 4;
  w.bytes = 4 * 4096;
  w.short_writes = 1;
  w.again = 2;
  hist(3001, false, 999).buckets[5] = 7;  // bash: no VM claims it
  hist(3001, false, 999).requests = 7;
  LatencyHist buf;  // the image's buffered ordered extents (any process)
  buf.buffered = true;
  buf.dev = st.st_dev;
  buf.ino = st.st_ino;
  buf.requests = 2;
  buf.bytes = 8192;
  kernel.hists.push_back(buf);
  t.harvest_latency();
  auto rows = t.stats().total();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].vm, "web-1");
  EXPECT_EQ(rows[0].image, img);
  EXPECT_EQ(rows[0].s.writes, 4u);
  EXPECT_EQ(rows[0].s.write_bytes, 4u * 4096);
  EXPECT_EQ(rows[0].s.short_writes, 1u);
  EXPECT_EQ(rows[0].s.again, 2u);
  EXPECT_EQ(rows[0].s.buffered_extents, 2u);
  EXPECT_EQ(rows[0].s.buffered_bytes, 8192u);
  EXPECT_EQ(rows[0].s.write_lat.count(), 4u);  // the kernel's samples only
  EXPECT_EQ(rows[0].s.write_lat.percentile(0.5), 2047u);
  EXPECT_EQ(rows[0].s.write_lat.percentile(0.99), 1'500'000u);
  EXPECT_EQ(rows[0].s.write_lat.max(), 1'500'000u);
  EXPECT_TRUE(rows[0].s.write_lat.sum_known());  // the kernel's exact sum (Prometheus _sum)
  EXPECT_EQ(rows[0].s.write_lat.sum(), 3u * 1500 + 1'500'000);
  EXPECT_EQ(t.counters().kernel_hist_unattributed, 7u);
  EXPECT_EQ(t.counters().kernel_hist_used, 3u);
  EXPECT_EQ(t.counters().kernel_hist_capacity, 64u);

  // a second read adds only what is new; the interval's max is bounded by its top bucket
  t.stats().take_interval();
  w.buckets[10] += 2;
  w.sum_ns += 2 * 1100;
  w.requests += 2;
  kernel.overflow = 5;
  t.harvest_latency();
  auto iv = t.stats().take_interval();
  ASSERT_EQ(iv.size(), 1u);
  EXPECT_EQ(iv[0].s.writes, 2u);  // only what is new
  EXPECT_EQ(iv[0].s.buffered_extents, 0u);
  EXPECT_EQ(iv[0].s.write_lat.count(), 2u);
  EXPECT_EQ(iv[0].s.write_lat.sum(), 2u * 1100);  // only what is new
  EXPECT_EQ(t.stats().total()[0].s.write_lat.sum(), 3u * 1500 + 1'500'000 + 2 * 1100);
  EXPECT_EQ(iv[0].s.write_lat.max(), 2047u);
  EXPECT_EQ(t.stats().total()[0].s.write_lat.count(), 6u);
  EXPECT_EQ(t.counters().kernel_hist_overflow, 5u);
  t.harvest_latency();  // nothing new
  EXPECT_EQ(t.stats().total()[0].s.write_lat.count(), 6u);

  // the kernel key was deleted and created again: counted from zero
  w.buckets.assign(kLatencyBuckets, 0);
  w.buckets[11] = 1;
  w.max_ns = 3000;
  w.sum_ns = 3000;
  w.requests = 1;
  w.bytes = 4096;
  w.short_writes = w.again = 0;
  t.harvest_latency();
  EXPECT_EQ(t.stats().total()[0].s.write_lat.count(), 7u);
  EXPECT_EQ(t.stats().total()[0].s.writes, 7u);
  EXPECT_EQ(t.stats().total()[0].s.write_lat.sum(), 3u * 1500 + 1'500'000 + 2 * 1100 + 3000);

  // the VM exits: its last samples are harvested while it still has its labels
  w.buckets[11] = 2;
  w.requests = 2;
  fs::remove_all(fp.proc / "1001");
  const int before = reads;
  auto d = t.poll(5000);
  ASSERT_EQ(d.removed.size(), 1u);
  EXPECT_EQ(reads, before + 1);
  EXPECT_EQ(t.stats().total()[0].s.write_lat.count(), 8u);
  // the CLI then removes the pid in the kernel (its keys go); a later sample
  // of that pid (reused by another process) is not attributed
  kernel.hists.erase(kernel.hists.begin());
  hist(1001, true, st.st_ino).buckets[11] = 1;
  t.harvest_latency();
  EXPECT_EQ(t.stats().total()[0].s.write_lat.count(), 8u);
  EXPECT_EQ(t.counters().kernel_hist_unattributed, 8u);

  auto j = nlohmann::json::parse(render_json(t.stats().total(), -1, &*std::make_unique<StatsCounters>(t.counters())));
  EXPECT_EQ(j["latency_hist"]["source"], "kernel");
  EXPECT_EQ(j["latency_hist"]["dropped"], 5);
}
