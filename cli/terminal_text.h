// TerminalText: untrusted bytes made safe to print on an operator's terminal.
//
//   std::printf("%-24s %s\n", TerminalText(result.name).c_str(),
//               TerminalText(result.message).c_str());
//
// Every text output of vigocli passes what an envoy (or anyone who can write
// the database or the vault directory) supplied through this one function:
// run ids, outcomes, result names and messages, envoy names, serials, audit
// actors, paths and details. JSON output does not use it: rapidjson's
// escaping already keeps control characters out of a JSON string.
//
// The result is valid UTF-8 holding no C0 control (U+0000–U+001F), no DEL, no
// C1 control (U+0080–U+009F), no line or paragraph separator (U+2028,
// U+2029) and no invisible or bidirectional formatting character (U+00AD,
// U+061C, U+180E, U+200B–U+200F, U+202A–U+202E, U+2060–U+206F, U+FEFF,
// U+FFF9–U+FFFB, U+E0000–U+E007F): an agent cannot move the cursor, clear the
// screen, set the window title, fake a line of output or reorder what the
// operator reads. Those characters become visible escapes:
//   \\  a backslash          \n \r \t  newline, carriage return, tab
//   \xHH  any other C0 byte, DEL, or a byte that is not part of well-formed
//         UTF-8 (overlong forms, surrogates and code points over U+10FFFF
//         included)
//   \u{HHHH}  a well-formed code point from the set above
// Everything else (printable ASCII, other well-formed UTF-8) is copied. The
// mapping is injective (a backslash is always escaped), so two different
// inputs never print the same.
//
// Thread safety: a pure function.
#ifndef VIGO_CLI_TERMINAL_TEXT_H_
#define VIGO_CLI_TERMINAL_TEXT_H_

#include <string>
#include <string_view>

namespace vigo::cli {

std::string TerminalText(std::string_view untrusted);

}  // namespace vigo::cli

#endif  // VIGO_CLI_TERMINAL_TEXT_H_
