// Safe output (core/safe_text.h): what text output, stderr lines and metric
// labels make of control bytes, invalid UTF-8 and invisible controls.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bdt/event.h"
#include "core/safe_text.h"
#include "sinks/sink.h"
#include "metrics/exposition.h"

using bdt::safe_text;

TEST(SafeText, PlainTextAndValidUtf8Unchanged) {
  for (std::string s : {"qemu-kvm", "/srv/images/vm 1.qcow2", "CPU 0/KVM", "média — 東京", ""}) {
    EXPECT_TRUE(bdt::is_safe_text(s)) << s;
    EXPECT_EQ(safe_text(s), s);
  }
}

TEST(SafeText, ControlBytesAndInvalidUtf8Escaped) {
  EXPECT_EQ(safe_text("\x1b[2J\x1b]0;pwned\x07"), "\\x1b[2J\\x1b]0;pwned\\x07");
  EXPECT_EQ(safe_text("a\nb\tc\rd\x7f"), "a\\x0ab\\x09c\\x0dd\\x7f");
  EXPECT_EQ(safe_text(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(safe_text("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(safe_text("\xc3"), "\\xc3");              // truncated sequence
  EXPECT_EQ(safe_text("\xc0\xaf"), "\\xc0\\xaf");     // overlong '/'
  EXPECT_EQ(safe_text("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate
  EXPECT_EQ(safe_text("back\\slash"), "back\\\\slash");
  EXPECT_FALSE(bdt::is_safe_text("back\\slash"));
}

TEST(SafeText, InvisibleControlsEscaped) {
  EXPECT_EQ(safe_text("\xc2\x9b" "31m"), "\\u{009b}31m");           // C1 CSI
  EXPECT_EQ(safe_text("abc\xe2\x80\xae" "fdp.exe"), "abc\\u{202e}fdp.exe");  // right-to-left override
  EXPECT_EQ(safe_text("\xe2\x81\xa6x\xe2\x81\xa9"), "\\u{2066}x\\u{2069}");
}

TEST(SafeText, FmtWrapperKeepsWidth) {
  EXPECT_EQ(fmt::format("[{:<8}]", bdt::shown("ab")), "[ab      ]");
  EXPECT_EQ(fmt::format("[{:<8}]", bdt::shown("a\x1b")), "[a\\x1b   ]");
}

TEST(SafeText, Utf8SequenceLength) {
  EXPECT_EQ(bdt::utf8_sequence_length("a", 0), 1u);
  EXPECT_EQ(bdt::utf8_sequence_length("\xc3\xa9", 0), 2u);
  EXPECT_EQ(bdt::utf8_sequence_length("\xe6\x9d\xb1", 0), 3u);
  EXPECT_EQ(bdt::utf8_sequence_length("\xf0\x9f\x98\x80", 0), 4u);
  EXPECT_EQ(bdt::utf8_sequence_length("\xf4\x90\x80\x80", 0), 0u);  // above U+10FFFF
  EXPECT_EQ(bdt::utf8_sequence_length("\x80", 0), 0u);
}

TEST(SafeText, MetricLabelValuesAreValidUtf8) {
  EXPECT_EQ(bdt::metrics::escape_label_value("vm-\xff\x1b[1m\"x\"\\"), "vm-\\\\xff\\\\x1b[1m\\\"x\\\"\\\\");
  EXPECT_EQ(bdt::metrics::escape_label_value("média\nb"), "média\\nb");
}

TEST(SafeText, TextSinkEscapesEventLinesAndFindings) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  {
    auto sink = bdt::make_text_sink(f, bdt::TimeBase{}, false);
    bdt::Event ev;
    ev.type = bdt::EventType::DioBegin;
    ev.body = bdt::DioBegin{};
    ev.set_comm("\x1b]0;x\x07\xff");
    ev.vm = "vm\x1b[31m";
    sink->event(ev);
    bdt::Finding fd;
    fd.detector = "d";
    fd.comm = "c\x1b[2J";
    fd.message = "message about \x1b[2J";
    fd.image = "/img/\xff.raw";
    sink->finding(fd);
    sink->flush();
  }
  std::fclose(f);
  const std::string out(buf, len);
  std::free(buf);
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
  EXPECT_EQ(out.find('\x07'), std::string::npos) << out;
  EXPECT_EQ(out.find('\xff'), std::string::npos) << out;
  EXPECT_NE(out.find("\\x1b]0;x\\x07\\xff"), std::string::npos) << out;
  EXPECT_NE(out.find("vm=vm\\x1b[31m"), std::string::npos) << out;
  EXPECT_NE(out.find("c\\x1b[2J"), std::string::npos) << out;
  EXPECT_NE(out.find("image=/img/\\xff.raw"), std::string::npos) << out;
}
