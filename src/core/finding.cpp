// Findings' names and helpers (bdt/finding.h).
#include "bdt/finding.h"

namespace bdt {

std::string_view to_string(Level l) { return l == Level::Symptom ? "symptom" : "hazard"; }

std::string_view to_string(Severity s) {
  switch (s) {
    case Severity::Critical: return "critical";
    case Severity::Warning: return "warning";
    default: return "info";
  }
}

}  // namespace bdt
