#include "range_lock.hpp"

namespace sgfs
{

RangeLock::Guard RangeLock::lock(std::uint64_t begin, std::uint64_t end)
{
    std::unique_lock guard(mutex_);
    released_.wait(guard, [&] { return !overlaps_locked(begin, end); });
    held_.emplace_front(begin, end);
    return Guard(*this, held_.begin());
}

std::size_t RangeLock::held() const
{
    std::lock_guard guard(mutex_);
    return held_.size();
}

bool RangeLock::overlaps_locked(std::uint64_t begin, std::uint64_t end) const
{
    for (const auto &[held_begin, held_end] : held_)
        if (begin < held_end && held_begin < end)
            return true;
    return false;
}

void RangeLock::unlock(std::list<std::pair<std::uint64_t, std::uint64_t>>::iterator it)
{
    {
        std::lock_guard guard(mutex_);
        held_.erase(it);
    }
    released_.notify_all();
}

} // namespace sgfs
