// One fuzz target (targets.h) as a libFuzzer binary: compiled once per target
// with BDT_FUZZ_TARGET naming it (tests/fuzz/CMakeLists.txt).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return bdt::fuzz::BDT_FUZZ_TARGET(data, size);
}
