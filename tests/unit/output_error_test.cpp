// Output that cannot be written (a full disk: /dev/full) is an error, never
// silence: every sink throws OutputError with the reason, and a sink destroyed
// after it does not end the process (sinks/output.cpp). The record file (its
// own descriptor, opened O_EXCL: not /dev/full) is integration.test_fault_output's.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>

#include "bdt/errors.h"
#include "sinks/chrome.h"
#include "sinks/sink.h"
#include "trace_samples.h"

using namespace bdt;
using namespace bdt::testing_samples;

namespace {

struct FullFile {
  std::FILE* f = nullptr;
  FullFile() { f = std::fopen("/dev/full", "w"); }
  ~FullFile() {
    if (f) std::fclose(f);
  }
};

// Feeds a sink every event type many times over (more than any buffer holds),
// a finding and the summary; returns the OutputError's message, "" if none.
std::string feed(Sink& s) {
  try {
    for (int i = 0; i < 2000; ++i)
      for (const auto& ev : one_of_each()) s.event(ev);
    s.finding(sample_finding());
    s.summary(Summary{});
    s.flush();
  } catch (const OutputError& e) {
    return e.what();
  }
  return "";
}

#define NEED_DEV_FULL(ff) \
  if (!(ff).f) GTEST_SKIP() << "SKIPPED: no /dev/full to write to"

TEST(OutputError, FlushOutputSaysWhy) {
  FullFile ff;
  NEED_DEV_FULL(ff);
  std::fputs("a line\n", ff.f);
  try {
    flush_output(ff.f);
    FAIL() << "no OutputError";
  } catch (const OutputError& e) {
    EXPECT_STREQ(e.what(), "cannot write the output: No space left on device");
  }
}

TEST(OutputError, EverySinkThrowsIt) {
  for (const char* kind : {"text", "json", "chrome"}) {
    SCOPED_TRACE(kind);
    FullFile ff;
    NEED_DEV_FULL(ff);
    std::unique_ptr<Sink> s;
    std::string why;
    const std::string k = kind;
    try {  // the JSON sink writes its header line at once
      s = k == "text" ? make_text_sink(ff.f, TimeBase{}, false)
          : k == "chrome" ? make_chrome_sink(ff.f, TraceHeader{})
                          : make_json_sink(ff.f, TraceHeader{});
      why = feed(*s);
    } catch (const OutputError& e) {
      why = e.what();
    }
    EXPECT_EQ(why, "cannot write the output: No space left on device");
    s.reset();  // destroyed after the error: no second throw, no terminate
  }
}

}  // namespace
