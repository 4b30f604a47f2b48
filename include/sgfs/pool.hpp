// A fixed set of resources (sg fds, each with its own reserve buffer) borrowed one at a
// time. Idle resources wait on a Boost.Intrusive list, so borrowing and returning never
// allocate; a Lease gives the resource back when it goes out of scope.
#pragma once

#include <boost/intrusive/list.hpp>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

namespace sgfs
{

using PoolHook =
    boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::safe_link>>;

// T must derive from PoolHook. The pool does not own the resources: their owner outlives it.
template <typename T> class Pool
{
  public:
    class Lease
    {
      public:
        Lease() = default;
        Lease(Pool *pool, T *item) : pool_(pool), item_(item) {}
        Lease(Lease &&other) noexcept
            : pool_(std::exchange(other.pool_, nullptr)), item_(std::exchange(other.item_, nullptr))
        {
        }
        Lease &operator=(Lease &&other) noexcept
        {
            if (this != &other) {
                release();
                pool_ = std::exchange(other.pool_, nullptr);
                item_ = std::exchange(other.item_, nullptr);
            }
            return *this;
        }
        Lease(const Lease &) = delete;
        Lease &operator=(const Lease &) = delete;
        ~Lease() { release(); }

        explicit operator bool() const { return item_ != nullptr; }
        T &operator*() const { return *item_; }
        T *operator->() const { return item_; }
        T *get() const { return item_; }

        void release()
        {
            if (pool_ != nullptr && item_ != nullptr)
                pool_->give_back(*item_);
            pool_ = nullptr;
            item_ = nullptr;
        }

      private:
        Pool *pool_ = nullptr;
        T *item_ = nullptr;
    };

    Pool() = default;
    Pool(const Pool &) = delete;
    Pool &operator=(const Pool &) = delete;
    ~Pool() { idle_.clear(); }

    void add(T &item)
    {
        {
            std::lock_guard lock(mutex_);
            idle_.push_back(item);
            ++size_;
        }
        available_.notify_one();
    }

    // Blocks until a resource is idle. LIFO: the most recently used fd is warmest.
    Lease acquire()
    {
        std::unique_lock lock(mutex_);
        available_.wait(lock, [this] { return !idle_.empty(); });
        return take_locked();
    }

    // All `count` at once, or none: a borrower holding one while waiting for another could
    // deadlock with its twin. count must not exceed size().
    std::vector<Lease> acquire_many(std::size_t count)
    {
        std::vector<Lease> leases;
        leases.reserve(count);
        std::unique_lock lock(mutex_);
        available_.wait(lock, [&] { return idle_.size() >= count; });
        for (std::size_t i = 0; i < count; ++i)
            leases.push_back(take_locked());
        return leases;
    }

    // Empty lease when nothing is idle.
    Lease try_acquire()
    {
        std::lock_guard lock(mutex_);
        if (idle_.empty())
            return {};
        return take_locked();
    }

    std::size_t size() const
    {
        std::lock_guard lock(mutex_);
        return size_;
    }
    std::size_t idle() const
    {
        std::lock_guard lock(mutex_);
        return idle_.size();
    }

  private:
    Lease take_locked()
    {
        T &item = idle_.back();
        idle_.pop_back();
        return Lease(this, &item);
    }

    void give_back(T &item)
    {
        {
            std::lock_guard lock(mutex_);
            idle_.push_back(item);
        }
        // All: one waiter may need several items, another just this one.
        available_.notify_all();
    }

    mutable std::mutex mutex_;
    std::condition_variable available_;
    boost::intrusive::list<T, boost::intrusive::constant_time_size<true>> idle_;
    std::size_t size_ = 0;
};

} // namespace sgfs
