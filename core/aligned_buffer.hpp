// Page-aligned heap memory: what sg direct IO needs from a user buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace sgfs
{

class AlignedBuffer
{
  public:
    static constexpr std::size_t alignment = 4096;

    AlignedBuffer() = default;
    explicit AlignedBuffer(std::size_t size)
    {
        if (size == 0)
            return;
        void *memory = nullptr;
        if (posix_memalign(&memory, alignment, size) != 0)
            throw std::bad_alloc();
        data_ = static_cast<std::uint8_t *>(memory);
        size_ = size;
    }
    AlignedBuffer(AlignedBuffer &&other) noexcept
        : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0))
    {
    }
    AlignedBuffer &operator=(AlignedBuffer &&other) noexcept
    {
        std::swap(data_, other.data_);
        std::swap(size_, other.size_);
        return *this;
    }
    // `size` bytes, all zero: what zeroing writes.
    static AlignedBuffer zeroed(std::size_t size)
    {
        AlignedBuffer buffer(size);
        if (size != 0)
            std::memset(buffer.data(), 0, size);
        return buffer;
    }
    AlignedBuffer(const AlignedBuffer &) = delete;
    AlignedBuffer &operator=(const AlignedBuffer &) = delete;
    ~AlignedBuffer() { std::free(data_); }

    std::uint8_t *data() const { return data_; }
    std::size_t size() const { return size_; }

  private:
    std::uint8_t *data_ = nullptr;
    std::size_t size_ = 0;
};

} // namespace sgfs
