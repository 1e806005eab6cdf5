// Interned strings for events: Event::vm and Event::image are string_views
// into a StringTable owned by whoever made the events (a trace reader, the
// QEMU attribution), so an event stays small and copyable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>

namespace bdt {

// Owns the strings that decoded events' vm/image views point to. Each distinct
// string is stored once; views stay valid for the table's lifetime (a reader
// keeps one, so events it returns stay valid as long as the reader lives).
// A reader's table is bounded (ReadLimits in replay/trace_reader.h): intern()
// throws InputError past max_strings distinct strings or max_bytes of them.
class StringTable {
 public:
  StringTable() = default;
  StringTable(size_t max_strings, size_t max_bytes) : max_strings_(max_strings), max_bytes_(max_bytes) {}
  std::string_view intern(std::string_view s);
  size_t size() const { return strings_.size(); }

 private:
  std::set<std::string, std::less<>> strings_;
  size_t bytes_ = 0;
  size_t max_strings_ = SIZE_MAX, max_bytes_ = SIZE_MAX;
};

}  // namespace bdt
