// Reading a small file whole, for the files of credentials that distd and distctl take.
#ifndef DISTD_COMMON_READ_FILE_H_
#define DISTD_COMMON_READ_FILE_H_

#include <cstddef>
#include <string>

namespace distd {

// Up to `size` bytes of `fd` from its offset, fewer at its end or on an error.
std::string ReadUpTo(int fd, size_t size);

}  // namespace distd

#endif  // DISTD_COMMON_READ_FILE_H_
