// Serializes writes whose block ranges overlap; disjoint ranges proceed in parallel.
// A read-modify-write of a boundary block must not interleave with another write of that
// block, or one writer's bytes are lost.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>

namespace sgfs
{

class RangeLock
{
  public:
    class Guard
    {
      public:
        Guard(RangeLock &owner, std::list<std::pair<std::uint64_t, std::uint64_t>>::iterator it)
            : owner_(&owner), it_(it)
        {
        }
        Guard(const Guard &) = delete;
        Guard &operator=(const Guard &) = delete;
        ~Guard() { owner_->unlock(it_); }

      private:
        RangeLock *owner_;
        std::list<std::pair<std::uint64_t, std::uint64_t>>::iterator it_;
    };

    // Blocks while any held range overlaps [begin, end).
    [[nodiscard]] Guard lock(std::uint64_t begin, std::uint64_t end);
    std::size_t held() const;

  private:
    bool overlaps_locked(std::uint64_t begin, std::uint64_t end) const;
    void unlock(std::list<std::pair<std::uint64_t, std::uint64_t>>::iterator it);

    mutable std::mutex mutex_;
    std::condition_variable released_;
    std::list<std::pair<std::uint64_t, std::uint64_t>> held_;
};

} // namespace sgfs
