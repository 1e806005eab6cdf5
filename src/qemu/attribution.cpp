// --qemu: label events and findings with the VM name and the disk image.
#include "qemu/qemu.h"

namespace bdt::qemu {

void Attributor::add(const QemuProcess& p) {
  remove(p.pid);
  std::string_view vm = strings_.intern(p.vm);
  by_pid_[p.pid] = vm;
  for (const auto& img : p.images) {
    if (!img.on_btrfs) continue;
    by_file_[DevIno{img.dev, img.ino}] = ImageRef{vm, strings_.intern(img.path), p.pid};
  }
}

void Attributor::remove(uint32_t pid) {
  by_pid_.erase(pid);
  for (auto it = by_file_.begin(); it != by_file_.end();)
    it = it->second.pid == pid ? by_file_.erase(it) : std::next(it);
}

void Attributor::update(const WatchDiff& d) {
  for (const auto& p : d.removed) remove(p.pid);
  for (const auto& p : d.added) add(p);
  for (const auto& p : d.changed) add(p);
}

bool Attributor::lookup(uint32_t pid, uint64_t dev, uint64_t ino, std::string_view& vm,
                        std::string_view& image) const {
  vm = {};
  image = {};
  if (auto it = by_pid_.find(pid); it != by_pid_.end()) vm = it->second;
  if (ino != 0) {
    if (auto it = by_file_.find(DevIno{dev, ino}); it != by_file_.end()) {
      // Another VM's image touched by this VM's process: keep the process's VM
      // name, but still name the image.
      if (vm.empty()) vm = it->second.vm;
      image = it->second.path;
    }
  }
  return !vm.empty();
}

void Attributor::apply(Event& ev) const { lookup(ev.pid, ev.dev, ev.ino, ev.vm, ev.image); }

void Attributor::apply(Finding& f) const {
  std::string_view vm, image;
  lookup(f.pid, f.dev.value_or(0), f.ino.value_or(0), vm, image);
  // A finding raised on a worker's event: its evidence may name the VM.
  for (const auto& e : f.evidence) {
    if (!vm.empty() && !image.empty()) break;
    std::string_view v2, i2;
    if (lookup(e.pid, e.dev, e.ino, v2, i2)) {
      if (vm.empty()) vm = v2;
      if (image.empty() && v2 == vm) image = i2;
    }
  }
  // A finding reported after the VM exited (gathered, or judged at the end of
  // the trace): keep the labels its events had when they happened.
  if (vm.empty()) vm = f.vm;
  if (image.empty() && vm == f.vm) image = f.image;
  for (const auto& e : f.evidence) {
    if (!vm.empty() && !image.empty()) break;
    if (vm.empty()) vm = e.vm;
    if (image.empty() && e.vm == vm) image = e.image;
  }
  f.vm = std::string(vm);
  f.image = std::string(image);
}

}  // namespace bdt::qemu
