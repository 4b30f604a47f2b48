// A page-aligned scratch buffer that only grows. Reads land in it so that core can hand
// it to the sg driver for direct IO without a bounce copy (the driver wants the user
// buffer aligned; FUSE's own request buffers are not).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <unistd.h>

namespace sgfs::fusefs
{

class PageAlignedBuffer
{
  public:
    // A buffer of at least `size` bytes, or nullptr when memory is short. The contents
    // do not survive growing.
    std::uint8_t *get(std::size_t size)
    {
        if (size <= capacity_)
            return data_.get();
        const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
        const std::size_t rounded = (size + page - 1) / page * page;
        void *memory = nullptr;
        if (posix_memalign(&memory, page, rounded) != 0)
            return nullptr;
        data_.reset(static_cast<std::uint8_t *>(memory));
        capacity_ = rounded;
        return data_.get();
    }

  private:
    struct Free {
        void operator()(std::uint8_t *p) const { std::free(p); }
    };
    std::unique_ptr<std::uint8_t, Free> data_;
    std::size_t capacity_ = 0;
};

} // namespace sgfs::fusefs
