// tinyattn/io/atomic_file.hpp — write a file so that readers see either the old or the new content.
//
// A checkpoint or result file that is half written (crash, full disk, killed job) is worse than no
// file: it may load and silently hold garbage. write_file_atomically therefore writes to a fresh
// temporary file in the destination's directory, checks every write, fsyncs it, renames it over the
// destination (rename is atomic within one file system) and fsyncs the directory so the rename
// itself survives a power loss. On any failure the temporary file is removed, the file at `path`
// (if any) is left exactly as it was, and IoError is thrown.
//
// The replaced file gets fresh permissions (0666 minus the umask), not those of the file it
// replaces. read_file_bytes, the reading counterpart, lives here too so that every file-system
// call of tinyattn::io reports failures the same way.
//
// POSIX only (Linux). Concurrent writers of one path race and the last rename wins, but no reader
// ever sees a torn file.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "tinyattn/core/config.hpp"

namespace tinyattn::io {

// Thrown when the operating system refuses a file operation. The message names the path, the
// operation and the system's reason (strerror).
class IoError : public Error {
 public:
  using Error::Error;
};

namespace detail {

inline std::string system_error_text(int error_number) {
  // strerror is not guaranteed thread-safe; strerror_r has two incompatible variants (GNU/XSI),
  // std::error_code gives the same text portably.
  return std::make_error_code(static_cast<std::errc>(error_number)).message();
}

[[noreturn]] inline void throw_io_error(const std::string& operation, const std::string& path, int error_number) {
  throw IoError(tinyattn::detail::concat(path, ": cannot ", operation, ": ", system_error_text(error_number),
                                         " (errno ", error_number, ")"));
}

// "dir/name" -> "dir", "name" -> ".", "/name" -> "/".
inline std::string parent_directory_of(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Writes all `size` bytes, retrying after EINTR and after short writes (a short write followed by
// a failing write is how a full disk or RLIMIT_FSIZE shows up). Returns 0 or the errno.
inline int write_fully(int fd, const unsigned char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (written == 0) return EIO;  // no progress and no error: never loop forever
    data += written;
    size -= static_cast<std::size_t>(written);
  }
  return 0;
}

inline int fsync_retrying(int fd) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

// Distinguishes temporary files of concurrent writers in the same process.
inline std::atomic<unsigned long>& temporary_file_counter() {
  static std::atomic<unsigned long> counter{0};
  return counter;
}

}  // namespace detail

// Where a write_file_atomically callback appends the file's bytes. Buffers internally so that many
// small appends cost few system calls; a failing write throws IoError naming the final path.
class ByteSink {
 public:
  ByteSink(const ByteSink&) = delete;
  ByteSink& operator=(const ByteSink&) = delete;

  // requires: `data` points to `size` readable bytes (may be null when size == 0).
  void append(const void* data, std::size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    if (size >= kBufferCapacity) {  // large block: skip the copy through the buffer
      flush();
      write_through(bytes, size);
      return;
    }
    if (buffer_.size() + size > kBufferCapacity) flush();
    buffer_.insert(buffer_.end(), bytes, bytes + size);
  }
  void append(std::string_view text) { append(text.data(), text.size()); }

  // Bytes appended so far (buffered ones included).
  std::uint64_t size() const { return flushed_bytes_ + buffer_.size(); }

 private:
  template <class Writer>
  friend void write_file_atomically_impl(const std::string& path, Writer&& write_contents);

  static constexpr std::size_t kBufferCapacity = std::size_t{1} << 16;

  ByteSink(int fd, const std::string& final_path) : fd_(fd), final_path_(final_path) {
    buffer_.reserve(kBufferCapacity);
  }

  void flush() {
    if (buffer_.empty()) return;
    write_through(buffer_.data(), buffer_.size());
    buffer_.clear();
  }

  void write_through(const unsigned char* data, std::size_t size) {
    if (const int error = detail::write_fully(fd_, data, size); error != 0) {
      detail::throw_io_error(
          tinyattn::detail::concat("write ", size, " bytes at offset ", flushed_bytes_, " (temporary file)"),
          final_path_, error);
    }
    flushed_bytes_ += size;
  }

  int fd_;
  const std::string& final_path_;
  std::vector<unsigned char> buffer_;
  std::uint64_t flushed_bytes_ = 0;
};

template <class Writer>
void write_file_atomically_impl(const std::string& path, Writer&& write_contents) {
  if (path.empty()) throw IoError("write_file_atomically: the path is empty");

  // 1. Create a temporary file next to the destination (same file system, so rename is atomic).
  //    O_EXCL: never reuse or follow someone else's file.
  std::string temporary_path;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    temporary_path = tinyattn::detail::concat(path, ".tmp.", ::getpid(), ".", detail::temporary_file_counter()++);
    fd = ::open(temporary_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno == EINTR) continue;
    if (fd < 0 && !(errno == EEXIST && attempt < 100)) {
      detail::throw_io_error(tinyattn::detail::concat("create temporary file '", temporary_path, "'"), path, errno);
    }
  }

  // From here on every failure must close and remove the temporary file.
  bool temporary_open = true;
  auto discard_temporary = [&]() noexcept {
    if (temporary_open) ::close(fd);
    temporary_open = false;
    ::unlink(temporary_path.c_str());
  };

  try {
    // 2. Write and check every byte.
    ByteSink sink(fd, path);
    std::forward<Writer>(write_contents)(sink);
    sink.flush();

    // 3. Make the content durable before it becomes visible under the final name.
    if (const int error = detail::fsync_retrying(fd); error != 0) {
      detail::throw_io_error("fsync temporary file", path, error);
    }
    temporary_open = false;
    // On Linux the descriptor is released even when close fails, so close is never retried.
    if (::close(fd) != 0 && errno != EINTR) detail::throw_io_error("close temporary file", path, errno);

    // 4. Replace the destination atomically.
    if (::rename(temporary_path.c_str(), path.c_str()) != 0) {
      detail::throw_io_error(tinyattn::detail::concat("rename temporary file '", temporary_path, "' into place"), path,
                             errno);
    }
  } catch (...) {
    discard_temporary();
    throw;
  }

  // 5. Persist the rename itself. The new content is already in place here, so a failure is
  //    reported but there is nothing left to undo. EINVAL: the file system cannot sync directories.
  const std::string directory = detail::parent_directory_of(path);
  int directory_fd;
  do {
    directory_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } while (directory_fd < 0 && errno == EINTR);
  if (directory_fd < 0) {
    detail::throw_io_error(
        tinyattn::detail::concat("open directory '", directory, "' to sync the rename (the file was replaced)"), path,
        errno);
  }
  const int sync_error = detail::fsync_retrying(directory_fd);
  ::close(directory_fd);
  if (sync_error != 0 && sync_error != EINVAL) {
    detail::throw_io_error(tinyattn::detail::concat("fsync directory '", directory, "' (the file was replaced)"), path,
                           sync_error);
  }
}

// Atomically replaces (or creates) the file at `path` with the bytes the callback appends to the
// sink. An exception thrown by the callback propagates unchanged, after the temporary file is gone.
// requires: the directory of `path` exists and is writable.
// ensures:  on return, `path` holds exactly the appended bytes, durably; on throw, `path` is as it
//           was before the call and no temporary file remains — except when only the final
//           directory fsync fails, after the rename (the message then says "the file was replaced").
inline void write_file_atomically(const std::string& path, const std::function<void(ByteSink&)>& write_contents) {
  write_file_atomically_impl(path, write_contents);
}

// Atomically replaces (or creates) the file at `path` with `size` bytes from `data`.
inline void write_file_atomically(const std::string& path, const void* data, std::size_t size) {
  write_file_atomically_impl(path, [&](ByteSink& sink) { sink.append(data, size); });
}

// Atomically replaces (or creates) the file at `path` with `contents`.
inline void write_file_atomically(const std::string& path, std::string_view contents) {
  write_file_atomically(path, contents.data(), contents.size());
}
inline void write_file_atomically(const std::string& path, const char* contents) {
  write_file_atomically(path, std::string_view(contents));
}
inline void write_file_atomically(const std::string& path, const std::string& contents) {
  write_file_atomically(path, std::string_view(contents));
}
inline void write_file_atomically(const std::string& path, const std::vector<unsigned char>& contents) {
  write_file_atomically(path, contents.data(), contents.size());
}

// Reads the whole file at `path`.
// ensures: returns the file's bytes; throws IoError (naming path, operation, reason) otherwise.
inline std::vector<unsigned char> read_file_bytes(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) detail::throw_io_error("open for reading", path, errno);

  std::vector<unsigned char> bytes;
  try {
    struct stat status {};
    if (::fstat(fd, &status) != 0) detail::throw_io_error("stat", path, errno);
    if (S_ISDIR(status.st_mode)) detail::throw_io_error("read", path, EISDIR);
    // The size is only a hint (the file may change while we read); read until end of file.
    if (S_ISREG(status.st_mode) && status.st_size > 0) {
      bytes.reserve(static_cast<std::size_t>(status.st_size));
    }
    unsigned char chunk[1 << 16];
    for (;;) {
      const ssize_t got = ::read(fd, chunk, sizeof chunk);
      if (got < 0) {
        if (errno == EINTR) continue;
        detail::throw_io_error(tinyattn::detail::concat("read at offset ", bytes.size()), path, errno);
      }
      if (got == 0) break;
      bytes.insert(bytes.end(), chunk, chunk + got);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return bytes;
}

// Removes the temporary files that writers killed mid-write (SIGKILL, power loss) left in `directory`:
// "<name>.tmp.<pid>.<n>" whose process <pid> no longer exists. Files of live writers are kept. Returns
// the names removed.
inline std::vector<std::string> remove_stale_temporary_files(const std::string& directory) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(directory, ec)) {
    const std::string name = entry.path().filename().string();
    const std::size_t at = name.rfind(".tmp.");
    if (at == std::string::npos || !entry.is_regular_file(ec)) continue;
    const std::string tail = name.substr(at + 5);  // "<pid>.<n>"
    const std::size_t dot = tail.find('.');
    if (dot == 0 || dot == std::string::npos || dot + 1 == tail.size() ||
        tail.find_first_not_of("0123456789.") != std::string::npos || tail.find('.', dot + 1) != std::string::npos)
      continue;
    const long long pid = std::stoll(tail.substr(0, dot));
    if (pid <= 0 || pid > 0x7fffffff) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    if (std::filesystem::remove(entry.path(), ec)) removed.push_back(name);
  }
  return removed;
}

}  // namespace tinyattn::io
