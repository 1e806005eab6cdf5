// Dropping capabilities (src/core/capabilities.h): per thread, for good,
// and the metrics server's thread runs with none.
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "core/capabilities.h"
#include "metrics/http_server.h"

using namespace bdt;

namespace {

// "CapEff" -> value, ... of /proc/self/task/TID/status.
std::map<std::string, std::string> task_status(const std::string& tid) {
  std::map<std::string, std::string> m;
  std::ifstream in("/proc/self/task/" + tid + "/status");
  for (std::string line; std::getline(in, line);) {
    auto c = line.find(':');
    if (c == std::string::npos) continue;
    auto v = line.substr(c + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    m[line.substr(0, c)] = v;
  }
  return m;
}

std::string task_named(const std::string& comm) {
  if (DIR* d = opendir("/proc/self/task")) {
    while (auto* e = readdir(d)) {
      std::string tid = e->d_name;
      if (tid[0] == '.') continue;
      std::ifstream c("/proc/self/task/" + tid + "/comm");
      std::string name;
      std::getline(c, name);
      if (name == comm) {
        closedir(d);
        return tid;
      }
    }
    closedir(d);
  }
  return {};
}

}  // namespace

TEST(Capabilities, Names) {
  EXPECT_EQ(caps::names(0), "none");
  EXPECT_EQ(caps::names(caps::bit(caps::kBpf) | caps::bit(caps::kPerfmon)), "cap_perfmon,cap_bpf");
  EXPECT_EQ(caps::names(caps::bit(caps::kSysPtrace)), "cap_sys_ptrace");
}

TEST(Capabilities, KeepOnlyIsForGoodAndInherited) {
  const caps::Sets before = caps::current();
  const uint64_t want = caps::bit(caps::kBpf) & before.permitted;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int bad = 0;
    if (!caps::keep_only(want).empty()) bad |= 1;
    const caps::Sets after = caps::current();
    if (after.permitted != want || after.effective != want || after.inheritable) bad |= 2;
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) bad |= 4;
    // Threads started afterwards inherit the reduced sets.
    uint64_t thread_perm = ~uint64_t{0};
    std::thread([&] { thread_perm = caps::current().permitted; }).join();
    if (thread_perm != want) bad |= 8;
    // Nothing can be taken back.
    if (caps::keep_only(before.permitted).empty() && caps::current().permitted != want) bad |= 16;
    _exit(bad);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "bits: 1 keep_only failed, 2 sets wrong, 4 no NNP, 8 thread, 16 regained";
  EXPECT_EQ(caps::current().permitted, before.permitted);  // the parent is untouched
}

TEST(Capabilities, MetricsServerThreadRunsWithNone) {
  const caps::Sets before = caps::current();
  auto server = metrics::Server::start("127.0.0.1:0");
  std::string tid;
  for (int i = 0; i < 100 && (tid = task_named("bdt-metrics")).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_FALSE(tid.empty()) << "no thread named bdt-metrics";
  std::map<std::string, std::string> st;
  for (int i = 0; i < 100; ++i) {  // the thread drops them first thing; give it the moment
    st = task_status(tid);
    if (st["CapPrm"] == "0000000000000000") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(st["CapEff"], "0000000000000000");
  EXPECT_EQ(st["CapPrm"], "0000000000000000");
  EXPECT_EQ(st["CapInh"], "0000000000000000");
  EXPECT_EQ(st["CapAmb"], "0000000000000000");
  EXPECT_EQ(st["NoNewPrivs"], "1");
  if (before.effective & caps::bit(caps::kSetpcap)) {
    EXPECT_EQ(st["CapBnd"], "0000000000000000");
  }
  EXPECT_EQ(caps::current().effective, before.effective);  // only that thread
}
