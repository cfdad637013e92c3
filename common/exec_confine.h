// Limits of an exec resource's `confine:` that the server (the .vgo loader)
// and the worker (before it builds the Landlock ruleset) both enforce.
#ifndef VIGO_COMMON_EXEC_CONFINE_H_
#define VIGO_COMMON_EXEC_CONFINE_H_

#include <cstddef>

namespace vigo {

// At most this many `confine.writable` paths per resource: each is one
// Landlock rule and one open before the command's fork.
inline constexpr size_t kMaxConfineWritable = 64;

}  // namespace vigo

#endif  // VIGO_COMMON_EXEC_CONFINE_H_
