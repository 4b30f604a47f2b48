#include "receive_loop.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <linux/fuse.h>
#include <memory>
#include <mutex>
#include <new>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace sgfs::fusefs
{
namespace
{

// Where a WRITE's data starts in a request: the header, then fuse_write_in (its full size
// since protocol 7.9; the kernels we run on speak 7.31 or later).
constexpr std::size_t write_data_offset = sizeof(fuse_in_header) + sizeof(fuse_write_in);

// libfuse 3.14 reads each request with read(fd, buf->mem, se->bufsize), and se->bufsize,
// not public, is FUSE_MAX_MAX_PAGES (256) pages plus one page for the header
// (fuse_session_new). The kernel itself never writes more than one request, at most the
// header plus max_write (1 MiB), so a buffer of this size is never overrun either way.
constexpr std::size_t libfuse_read_pages = 256 + 1;

std::size_t page_size()
{
    return static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// One worker's request memory: a private mapping (untouched pages cost nothing) with the
// request placed write_data_offset bytes before the second page.
class ReceiveBuffer
{
  public:
    ReceiveBuffer() : length_((libfuse_read_pages + 1) * page_size())
    {
        void *memory =
            mmap(nullptr, length_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory != MAP_FAILED)
            memory_ = static_cast<char *>(memory);
    }
    ReceiveBuffer(const ReceiveBuffer &) = delete;
    ReceiveBuffer &operator=(const ReceiveBuffer &) = delete;
    ~ReceiveBuffer()
    {
        if (memory_ != nullptr)
            munmap(memory_, length_);
    }

    bool allocated() const { return memory_ != nullptr; }
    char *request() const { return memory_ + page_size() - write_data_offset; }
    std::size_t capacity() const { return length_ - (page_size() - write_data_offset); }
    bool holds(const void *data, std::size_t length) const
    {
        const auto begin = reinterpret_cast<std::uintptr_t>(memory_);
        const auto at = reinterpret_cast<std::uintptr_t>(data);
        return at >= begin && length <= length_ && at - begin <= length_ - length;
    }

  private:
    std::size_t length_;
    char *memory_ = nullptr;
};

// Request buffers no worker reads into now, kept to be used again: their pages stay faulted
// in (a fresh mapping costs a page fault per page of its first write), and a buffer a
// handler kept for a write's commands comes back here once they complete. It holds at most
// as many as were ever in use at once.
class BufferStock : public std::enable_shared_from_this<BufferStock>
{
  public:
    // A buffer, reused or new, that returns here when its last owner lets go; null when
    // none can be mapped.
    std::shared_ptr<ReceiveBuffer> take()
    {
        std::unique_ptr<ReceiveBuffer> buffer;
        {
            const std::lock_guard lock(mutex_);
            if (!spare_.empty()) {
                buffer = std::move(spare_.back());
                spare_.pop_back();
            }
        }
        try {
            if (buffer == nullptr) {
                buffer = std::make_unique<ReceiveBuffer>();
                if (!buffer->allocated())
                    return nullptr;
            }
            // The stock lives while any of its buffers does.
            return {buffer.release(), GiveBack{shared_from_this()}};
        } catch (const std::bad_alloc &) {
            return nullptr;
        }
    }

  private:
    struct GiveBack {
        std::shared_ptr<BufferStock> stock;
        void operator()(ReceiveBuffer *buffer) const noexcept { stock->give_back(buffer); }
    };

    void give_back(ReceiveBuffer *buffer) noexcept
    {
        std::unique_ptr<ReceiveBuffer> owned(buffer);
        const std::lock_guard lock(mutex_);
        try {
            spare_.push_back(std::move(owned));
        } catch (const std::bad_alloc &) {
            // No room in the list: this one is unmapped instead.
        }
    }

    std::mutex mutex_;
    std::vector<std::unique_ptr<ReceiveBuffer>> spare_;
};

// The request a worker thread is serving, for keep_request_memory: while it lives, the
// thread's handlers may keep the buffer, and the worker then reads on into `replacement`.
struct ServingRequest {
    const std::shared_ptr<ReceiveBuffer> &buffer;
    BufferStock &stock;
    std::shared_ptr<ReceiveBuffer> replacement;
};

thread_local ServingRequest *serving_request = nullptr;

class Serving
{
  public:
    explicit Serving(ServingRequest &request) { serving_request = &request; }
    Serving(const Serving &) = delete;
    Serving &operator=(const Serving &) = delete;
    ~Serving() { serving_request = nullptr; }
};

// Ends a worker blocked in read() on /dev/fuse: libfuse's handlers only set the session's
// exited flag, in whichever thread took the signal. This one has no SA_RESTART, so the
// read fails with EINTR and libfuse's receive sees the flag.
int wake_signal()
{
    return SIGRTMIN;
}

void ignore_wake(int) {}

int install_wake_handler()
{
    struct sigaction action {
    };
    action.sa_handler = ignore_wake;
    sigemptyset(&action.sa_mask);
    return sigaction(wake_signal(), &action, nullptr) == 0 ? 0 : -errno;
}

// The signals that end the session, and the wake signal: only ever taken while waiting.
sigset_t loop_signals()
{
    sigset_t set;
    sigemptyset(&set);
    for (const int signal : {SIGHUP, SIGINT, SIGTERM, wake_signal()})
        sigaddset(&set, signal);
    return set;
}

// Blocks `signals` in this thread while it lives; threads started meanwhile inherit that.
class BlockedSignals
{
  public:
    explicit BlockedSignals(const sigset_t &signals)
    {
        pthread_sigmask(SIG_BLOCK, &signals, &previous_);
    }
    BlockedSignals(const BlockedSignals &) = delete;
    BlockedSignals &operator=(const BlockedSignals &) = delete;
    ~BlockedSignals() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }

    // The mask to wait with: the one before, with `signals` taken.
    sigset_t waiting_mask(const sigset_t &signals) const
    {
        sigset_t mask = previous_;
        for (int signal = 1; signal < NSIG; ++signal)
            if (sigismember(&signals, signal) == 1)
                sigdelset(&mask, signal);
        return mask;
    }

  private:
    sigset_t previous_{};
};

class WorkerPool;

class Worker
{
  public:
    Worker(WorkerPool &pool, fuse_session *session) : pool_(pool), session_(session) {}
    Worker(const Worker &) = delete;
    Worker &operator=(const Worker &) = delete;

    void start()
    {
        thread_ = std::thread([this] { run(); });
    }

    // Called once the session has exited: wakes the worker until it notices. A wake that
    // lands just before its read() is lost, so it is repeated.
    void stop()
    {
        if (!thread_.joinable())
            return;
        while (!finished_.load(std::memory_order_acquire)) {
            pthread_kill(thread_.native_handle(), wake_signal());
            poll(nullptr, 0, 10);
        }
        thread_.join();
    }
    int error() const { return error_; }

  private:
    void run();
    int serve();
    int receive(fuse_buf &request, const sigset_t &receive_mask);

    WorkerPool &pool_;
    fuse_session *session_;
    std::thread thread_;
    std::atomic<bool> finished_{false};
    int error_ = 0;
};

// Starts workers as they are needed, like libfuse's loop: one more whenever none is left
// waiting for a request, up to the limit. A fixed crowd of idle workers would be woken in
// turn (the kernel queues readers first in, first out) and cost a thread switch per
// request: a sequential writer is served best by one or two.
class WorkerPool
{
  public:
    WorkerPool(fuse_session *session, unsigned max_workers)
        : session_(session), max_workers_(std::max(max_workers, 1U)),
          stock_(std::make_shared<BufferStock>())
    {
    }
    WorkerPool(const WorkerPool &) = delete;
    WorkerPool &operator=(const WorkerPool &) = delete;
    ~WorkerPool() { stop(); }

    // Returns false when no worker could be started and none runs.
    bool start_worker()
    {
        const std::lock_guard lock(mutex_);
        if (stopping_ || workers_.size() >= max_workers_)
            return !workers_.empty();
        try {
            workers_.reserve(workers_.size() + 1); // push_back cannot throw below
            auto worker = std::make_unique<Worker>(*this, session_);
            worker->start();
            workers_.push_back(std::move(worker));
        } catch (const std::exception &) {
            // No memory or no thread: the workers there serve on.
        }
        return !workers_.empty();
    }

    BufferStock &stock() { return *stock_; }
    void waiting() { idle_.fetch_add(1, std::memory_order_relaxed); }
    void received()
    {
        if (idle_.fetch_sub(1, std::memory_order_relaxed) == 1)
            start_worker();
    }

    // A worker ended (unmounted, or a receive error): the others and the main thread stop.
    void worker_ended()
    {
        fuse_session_exit(session_);
        pthread_kill(main_thread_, wake_signal());
    }

    // Returns the first error a worker ended with, or 0.
    int stop()
    {
        {
            const std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        int error = 0;
        for (auto &worker : workers_) {
            worker->stop();
            if (worker->error() < 0 && error == 0)
                error = worker->error();
        }
        return error;
    }

  private:
    fuse_session *session_;
    const unsigned max_workers_;
    const pthread_t main_thread_ = pthread_self();
    const std::shared_ptr<BufferStock> stock_;
    std::mutex mutex_;
    bool stopping_ = false; // no worker is added after: stop() walks the list unlocked
    std::vector<std::unique_ptr<Worker>> workers_;
    std::atomic<unsigned> idle_{0};
};

void Worker::run()
{
    error_ = serve();
    finished_.store(true, std::memory_order_release);
    pool_.worker_ended();
}

int Worker::serve()
{
    std::shared_ptr<ReceiveBuffer> buffer = pool_.stock().take();
    if (buffer == nullptr)
        return -ENOMEM;
    sigset_t receive_mask;
    pthread_sigmask(SIG_SETMASK, nullptr, &receive_mask);
    sigdelset(&receive_mask, wake_signal());
    while (!fuse_session_exited(session_)) {
        fuse_buf request{};
        request.mem = buffer->request();
        request.size = buffer->capacity();
        pool_.waiting();
        const int rc = receive(request, receive_mask);
        pool_.received();
        if (rc == -EINTR || rc == -EAGAIN)
            continue;
        if (rc <= 0) // 0: exited, or unmounted (libfuse has exited the session)
            return rc;
        // With splice off (Filesystem::init) the request is in our memory; were it in a
        // pipe, libfuse would copy it out itself: slower, still correct. A handler may keep
        // the buffer (keep_request_memory): the next request goes into its replacement.
        ServingRequest serving{buffer, pool_.stock(), nullptr};
        {
            const Serving scope(serving);
            fuse_session_process_buf(session_, &request);
        }
        if (serving.replacement != nullptr)
            buffer = std::move(serving.replacement);
    }
    return 0;
}

// Only a worker blocked in read() may be woken: a wake taken while a request is being
// served would interrupt its SCSI command.
int Worker::receive(fuse_buf &request, const sigset_t &receive_mask)
{
    sigset_t serve_mask;
    pthread_sigmask(SIG_SETMASK, &receive_mask, &serve_mask);
    const int rc = fuse_session_receive_buf(session_, &request);
    pthread_sigmask(SIG_SETMASK, &serve_mask, nullptr);
    return rc;
}

} // namespace

std::shared_ptr<const void> keep_request_memory(const void *data, std::size_t length)
{
    ServingRequest *serving = serving_request;
    if (serving == nullptr || !serving->buffer->holds(data, length))
        return nullptr;
    if (serving->replacement == nullptr) {
        serving->replacement = serving->stock.take();
        if (serving->replacement == nullptr)
            return nullptr;
    }
    return serving->buffer;
}

int run_receive_loop(fuse_session *session, unsigned workers)
{
    if (const int rc = install_wake_handler(); rc < 0)
        return rc;
    // The main thread takes the signals, and only while it waits: checking the exited flag
    // and waiting are one step, so a signal between them is not lost.
    const sigset_t signals = loop_signals();
    const BlockedSignals blocked(signals);
    const sigset_t waiting_mask = blocked.waiting_mask(signals);
    WorkerPool pool(session, workers);
    if (!pool.start_worker())
        return -EAGAIN;
    while (!fuse_session_exited(session))
        ppoll(nullptr, 0, nullptr, &waiting_mask);
    const int error = pool.stop();
    fuse_session_reset(session);
    return error;
}

} // namespace sgfs::fusefs
