#pragma once
// An SQLite VFS for tests that injects a full disk: it wraps the default VFS, becomes the
// default itself, and while FullDiskVfs::full is set every write or truncation of a database,
// journal or WAL file fails with SQLITE_FULL (reads, locks and syncs go through). Install it
// before the code under test opens its database: FullDiskVfs::install() (idempotent).

#include <sqlite3.h>

#include <atomic>

namespace topicflow::testing {

class FullDiskVfs {
 public:
  static inline std::atomic<bool> full{false};

  static void install() {
    static const bool installed = [] {
      real_ = sqlite3_vfs_find(nullptr);
      vfs_ = *real_;
      vfs_.zName = "topicflow-full-disk";
      vfs_.szOsFile = static_cast<int>(sizeof(File)) + real_->szOsFile;
      vfs_.xOpen = open;
      return sqlite3_vfs_register(&vfs_, /*makeDflt=*/1) == SQLITE_OK;
    }();
    (void)installed;
  }

 private:
  struct File {
    sqlite3_file base;
    sqlite3_file* real;
  };
  static sqlite3_file* real(sqlite3_file* f) { return reinterpret_cast<File*>(f)->real; }

  static int open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags,
                  int* out_flags) {
    auto* f = reinterpret_cast<File*>(file);
    f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + sizeof(File));
    const int rc = real_->xOpen(real_, name, f->real, flags, out_flags);
    if (f->real->pMethods != nullptr) {
      methods_ = *f->real->pMethods;  // the same for every file of the unix VFS
      methods_.xClose = [](sqlite3_file* x) { return real(x)->pMethods->xClose(real(x)); };
      methods_.xRead = [](sqlite3_file* x, void* buf, int n, sqlite3_int64 at) {
        return real(x)->pMethods->xRead(real(x), buf, n, at);
      };
      methods_.xWrite = [](sqlite3_file* x, const void* buf, int n, sqlite3_int64 at) {
        return full ? SQLITE_FULL : real(x)->pMethods->xWrite(real(x), buf, n, at);
      };
      methods_.xTruncate = [](sqlite3_file* x, sqlite3_int64 size) {
        return full ? SQLITE_FULL : real(x)->pMethods->xTruncate(real(x), size);
      };
      methods_.xSync = [](sqlite3_file* x, int sync_flags) {
        return real(x)->pMethods->xSync(real(x), sync_flags);
      };
      methods_.xFileSize = [](sqlite3_file* x, sqlite3_int64* size) {
        return real(x)->pMethods->xFileSize(real(x), size);
      };
      methods_.xLock = [](sqlite3_file* x, int l) { return real(x)->pMethods->xLock(real(x), l); };
      methods_.xUnlock = [](sqlite3_file* x, int l) {
        return real(x)->pMethods->xUnlock(real(x), l);
      };
      methods_.xCheckReservedLock = [](sqlite3_file* x, int* out) {
        return real(x)->pMethods->xCheckReservedLock(real(x), out);
      };
      methods_.xFileControl = [](sqlite3_file* x, int op, void* arg) {
        return real(x)->pMethods->xFileControl(real(x), op, arg);
      };
      methods_.xSectorSize = [](sqlite3_file* x) {
        return real(x)->pMethods->xSectorSize(real(x));
      };
      methods_.xDeviceCharacteristics = [](sqlite3_file* x) {
        return real(x)->pMethods->xDeviceCharacteristics(real(x));
      };
      methods_.xShmMap = [](sqlite3_file* x, int page, int size, int extend, void volatile** p) {
        return real(x)->pMethods->xShmMap(real(x), page, size, extend, p);
      };
      methods_.xShmLock = [](sqlite3_file* x, int offset, int n, int lock_flags) {
        return real(x)->pMethods->xShmLock(real(x), offset, n, lock_flags);
      };
      methods_.xShmBarrier = [](sqlite3_file* x) { real(x)->pMethods->xShmBarrier(real(x)); };
      methods_.xShmUnmap = [](sqlite3_file* x, int del) {
        return real(x)->pMethods->xShmUnmap(real(x), del);
      };
      methods_.xFetch = [](sqlite3_file* x, sqlite3_int64 at, int n, void** p) {
        return real(x)->pMethods->xFetch(real(x), at, n, p);
      };
      methods_.xUnfetch = [](sqlite3_file* x, sqlite3_int64 at, void* p) {
        return real(x)->pMethods->xUnfetch(real(x), at, p);
      };
      file->pMethods = &methods_;
    } else {
      file->pMethods = nullptr;
    }
    return rc;
  }

  static inline sqlite3_vfs* real_ = nullptr;
  static inline sqlite3_vfs vfs_{};
  static inline sqlite3_io_methods methods_{};
};

}  // namespace topicflow::testing
