// Template expressions of the .vgo language (docs/config/vgo.md#templates).
#include <string>
#include <string_view>
#include <vector>

#include "common/strings.h"
#include "server/stacks/model.h"

namespace vigo::server::stacks_internal {

bool IsIdentifier(std::string_view s) {
  if (s.empty() || s.size() > kMaxIdentifierLen) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t'; }


// The position after "{{" and spaces, when that starts an expression.
bool StartsExpression(std::string_view text, size_t open, size_t* inner_begin) {
  size_t p = open + 2;
  while (p < text.size() && IsSpace(text[p])) ++p;
  if (p < text.size() && (text[p] == '.' || text[p] == '-')) {
    *inner_begin = p;
    return true;
  }
  return false;
}

// Expression text quoted in errors, shortened (it is config text, never a value).
std::string Quote(std::string_view s) {
  if (s.size() > 64) return StrCat(s.substr(0, 64), "...");
  return std::string(s);
}

void AppendLiteral(std::vector<Piece>* pieces, std::string_view text) {
  if (text.empty()) return;
  if (!pieces->empty() && pieces->back().kind == PieceKind::kLiteral) {
    pieces->back().text.append(text);
    return;
  }
  pieces->push_back(Piece{PieceKind::kLiteral, std::string(text)});
}

}  // namespace

bool HasTemplateExpression(std::string_view text) {
  size_t pos = 0;
  while ((pos = text.find("{{", pos)) != std::string_view::npos) {
    size_t inner = 0;
    if (StartsExpression(text, pos, &inner)) return true;
    pos += 2;
  }
  return false;
}

absl::Status ParseTemplate(std::string_view text, const TemplateOptions& opts,
                           std::vector<Piece>* pieces) {
  pieces->clear();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t open = text.find("{{", pos);
    if (open == std::string_view::npos) break;
    size_t inner_begin = 0;
    if (!StartsExpression(text, open, &inner_begin)) {
      AppendLiteral(pieces, text.substr(pos, open + 2 - pos));
      pos = open + 2;
      continue;
    }
    AppendLiteral(pieces, text.substr(pos, open - pos));
    size_t close = text.find("}}", inner_begin);
    size_t newline = text.find('\n', inner_begin);
    if (close == std::string_view::npos || (newline != std::string_view::npos && newline < close)) {
      return absl::InvalidArgumentError("unterminated template expression (missing '}}')");
    }
    std::string_view inner = text.substr(inner_begin, close - inner_begin);
    while (!inner.empty() && IsSpace(inner.back())) inner.remove_suffix(1);
    if (inner.front() == '-' || inner.back() == '-') {
      return absl::InvalidArgumentError(
          StrCat("template trim markers are not supported in '{{ ", Quote(inner), " }}'"));
    }
    if (inner == ".Envoy.Name") {
      if (!opts.allow_envoy_name) {
        return absl::InvalidArgumentError("'{{ .Envoy.Name }}' is not allowed here");
      }
      pieces->push_back(Piece{PieceKind::kEnvoyName, {}});
    } else if (inner == ".SecretFile") {
      if (!opts.allow_secret_file) {
        return absl::InvalidArgumentError(
            "'{{ .SecretFile }}' is allowed only in the command of an exec resource that "
            "sets secret_file");
      }
      pieces->push_back(Piece{PieceKind::kSecretFile, {}});
    } else if (inner.substr(0, 6) == ".Vars." && IsIdentifier(inner.substr(6))) {
      pieces->push_back(Piece{PieceKind::kVar, std::string(inner.substr(6))});
    } else {
      return absl::InvalidArgumentError(StrCat("unknown template name '", Quote(inner),
                                               "' (known: .Vars.NAME, .Envoy.Name, .SecretFile)"));
    }
    pos = close + 2;
  }
  if (pos < text.size()) AppendLiteral(pieces, text.substr(pos));
  return absl::OkStatus();
}

}  // namespace vigo::server::stacks_internal
