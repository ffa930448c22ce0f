// Quoting outside text in messages.
#pragma once

#include <string>
#include <string_view>

namespace evomerge {

// Outside text quoted in an error message (a JSON parser's complaint, a name read from a file),
// rendered as printable ASCII: other bytes become \xNN, so a hostile file cannot put raw bytes or
// control codes on a terminal.
std::string printable(std::string_view text);

}  // namespace evomerge
