// errors.h: the typed errors a kernel may raise.
//
// Kernels run on pool threads, where a JavaScript exception cannot be thrown. They throw
// emu::Error (a plain C++ exception carrying the kind); the thread pool carries the first one
// back to the calling thread, and the N-API glue turns it into the matching TypeScript error
// class (IndexError, ShapeError, ...), so bad input never aborts the process.
#pragma once
#include <stdexcept>
#include <string>

namespace emu {

enum class ErrorKind { Shape, DType, Device, Index, Value, Memory, Internal };

struct Error : std::runtime_error {
  ErrorKind kind;
  Error(ErrorKind k, const std::string& msg) : std::runtime_error(msg), kind(k) {}
};

[[noreturn]] inline void fail(ErrorKind k, const std::string& msg) { throw Error(k, msg); }

}  // namespace emu
