// The kinds of error every command maps to its exit status: bad input or
// usage (exit 1), output that cannot be written (exit 1) and a request the
// kernel or the permissions make impossible (exit 2). Each carries a one-line
// message that says what to do.
#pragma once

#include <stdexcept>

namespace bdt {

// Bad input or usage: the message is one line naming the option, file and
// line/offset (exit 1).
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The output (standard output or --output FILE, a --record FILE) cannot be
// written: a full disk, an I/O error. What the command was writing is lost from
// there on, so it stops and says so (exit 1).
struct OutputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The request cannot be carried out on this kernel / with these permissions
// (exit 2). The message says what to do about it.
struct KernelError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace bdt
