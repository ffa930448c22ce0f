#include "infer/precision.h"

#include "common/error.h"

namespace evomerge {

std::string_view precision_name(Precision precision) {
  return precision == Precision::Bf16 ? "bf16" : "exact";
}

std::optional<Precision> parse_precision(std::string_view name) {
  for (Precision p : {Precision::Exact, Precision::Bf16})
    if (precision_name(p) == name) return p;
  return std::nullopt;
}

Precision parse_precision_or_fail(std::string_view name, std::string_view where) {
  if (auto p = parse_precision(name)) return *p;
  fail("infer", "{} '{}' is not one of exact, bf16", where, name);
}

}  // namespace evomerge
