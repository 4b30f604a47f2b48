#include "session.hpp"

#include "hotplug.hpp"
#include "receive_loop.hpp"
#include "sgfs/disk_claim.hpp"

#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <syslog.h>
#include <vector>

namespace sgfs::fusefs
{
namespace
{

// Owns a fuse_args vector built one argument at a time.
class FuseArgs
{
  public:
    FuseArgs() = default;
    FuseArgs(const FuseArgs &) = delete;
    FuseArgs &operator=(const FuseArgs &) = delete;
    ~FuseArgs() { fuse_opt_free_args(&args_); }

    int add(const std::string &arg) { return fuse_opt_add_arg(&args_, arg.c_str()); }
    fuse_args *get() { return &args_; }

  private:
    fuse_args args_ = FUSE_ARGS_INIT(0, nullptr);
};

// A comma-separated -o string whose pieces keep their commas ("fsname=sg0,sg1").
class OptionString
{
  public:
    OptionString() = default;
    OptionString(const OptionString &) = delete;
    OptionString &operator=(const OptionString &) = delete;
    ~OptionString() { std::free(text_); }

    int add(const std::string &option) { return fuse_opt_add_opt_escaped(&text_, option.c_str()); }
    std::string str() const { return text_ ? text_ : ""; }

  private:
    char *text_ = nullptr;
};

struct SessionDeleter {
    void operator()(fuse_session *session) const { fuse_session_destroy(session); }
};
using SessionPtr = std::unique_ptr<fuse_session, SessionDeleter>;

// One setup step on the session that succeeded (`result` 0) and is undone on scope exit:
// the signal handlers removed, the mount unmounted.
template <void (*Undo)(fuse_session *)> class SessionStep
{
  public:
    SessionStep(fuse_session *session, int result) : session_(session), done_(result == 0) {}
    SessionStep(const SessionStep &) = delete;
    SessionStep &operator=(const SessionStep &) = delete;
    ~SessionStep()
    {
        if (done_)
            Undo(session_);
    }
    bool done() const { return done_; }

  private:
    fuse_session *session_;
    bool done_;
};

// libfuse leaves alone a signal that is ignored when it starts, and a shell ignores SIGINT
// for the jobs it starts with '&'. SIGHUP, SIGINT and SIGTERM must unmount however sgfs was
// started, so they get their default back first. 0 or -1, like fuse_set_signal_handlers.
int install_signal_handlers(fuse_session *session)
{
    for (const int signal : {SIGHUP, SIGINT, SIGTERM}) {
        struct sigaction current {
        };
        if (sigaction(signal, nullptr, &current) == 0 && current.sa_handler == SIG_IGN)
            std::signal(signal, SIG_DFL);
    }
    return fuse_set_signal_handlers(session);
}

struct LoopConfigDeleter {
    void operator()(fuse_loop_config *config) const { fuse_loop_cfg_destroy(config); }
};
using LoopConfigPtr = std::unique_ptr<fuse_loop_config, LoopConfigDeleter>;

// Once daemonized, stderr is /dev/null: libfuse's messages and ours go to syslog instead.
void log_to_syslog(enum fuse_log_level level, const char *format, va_list args)
{
    vsyslog(static_cast<int>(level), format, args);
}

int run_loop(fuse_session *session, unsigned max_threads, bool single_threaded, bool aligned_writes)
{
    if (aligned_writes)
        return run_receive_loop(session, single_threaded ? 1 : max_threads);
    if (single_threaded)
        return fuse_session_loop(session);
    LoopConfigPtr config(fuse_loop_cfg_create());
    if (!config)
        return -ENOMEM;
    // One /dev/fuse fd per worker thread: requests do not queue behind one fd's lock.
    fuse_loop_cfg_set_clone_fd(config.get(), 1);
    fuse_loop_cfg_set_max_threads(config.get(), max_threads);
    return fuse_session_loop_mt(session, config.get());
}

} // namespace

std::string session_option_string(const std::string &fsname, const std::string &subtype,
                                  const std::vector<std::string> &more)
{
    OptionString options;
    options.add("fsname=" + fsname);
    options.add("subtype=" + subtype);
    // libfuse 3.14 wants max_read both here and in init() (see configure_connection).
    options.add("max_read=" + std::to_string(max_request_bytes));
    // The kernel checks the owner and mode we report (those of the sg nodes). Without this,
    // allow_other would let every user write to every disk.
    options.add("default_permissions");
    for (const std::string &option : more)
        options.add(option);
    return options.str();
}

int serve(Filesystem &filesystem, const MountOptions &options, const SessionSettings &settings)
{
    std::vector<std::string> more;
    if (options.disk.read_only)
        more.emplace_back("ro");
    more.insert(more.end(), options.fuse_options.begin(), options.fuse_options.end());
    const std::string fuse_options = session_option_string(settings.fsname, settings.subtype, more);

    FuseArgs args;
    args.add("sgfs");
    if (options.debug)
        args.add("-d");
    args.add("-o");
    args.add(fuse_options);

    SessionPtr session(fuse_session_new(args.get(), &Filesystem::operations(),
                                        sizeof(fuse_lowlevel_ops), &filesystem));
    if (!session) {
        std::fprintf(stderr, "sgfs: libfuse refused the options '%s'\n", fuse_options.c_str());
        return 1;
    }
    const SessionStep<fuse_remove_signal_handlers> signal_handlers(
        session.get(), install_signal_handlers(session.get()));
    if (!signal_handlers.done()) {
        std::fprintf(stderr, "sgfs: cannot install signal handlers\n");
        return 1;
    }
    const SessionStep<fuse_session_unmount> mount(
        session.get(), fuse_session_mount(session.get(), settings.mountpoint.c_str()));
    if (!mount.done()) {
        std::fprintf(stderr, "sgfs: cannot mount on '%s'\n", settings.mountpoint.c_str());
        return 1;
    }
    // Only now: a failure above still reaches the terminal or mount(8), and the parent's
    // exit status tells whether the mount exists.
    if (fuse_daemonize(settings.foreground ? 1 : 0) != 0)
        return 1;
    if (!settings.foreground) {
        openlog("sgfs", LOG_PID, LOG_DAEMON);
        fuse_set_log_func(log_to_syslog);
        // The holds on the disks (lock files, O_EXCL block devices) came across the fork
        // as they are, shared with the parent until it exits: kept, never re-taken (the
        // parent's copy would make a new O_EXCL open fail). Only the pid changed.
        if (options.disk.claims)
            options.disk.claims->holder_moved_here();
        // The disks were opened before the fork (so that a bad one fails the mount while
        // the caller still waits); the sg driver wants them opened by this process.
        std::string message;
        if (filesystem.reopen_disks(disk_opener(options.disk), message) < 0) {
            fuse_log(FUSE_LOG_ERR, "%s; unmounting\n", message.c_str());
            return 1;
        }
    }
    filesystem.set_session(session.get());
    // Started after the reopen (the daemon's own descriptors) and stopped, by scope, before
    // the unmount: it tells the kernel of the names it adds and removes.
    std::unique_ptr<Hotplug> hotplug;
    if (std::string message;
        Hotplug::start(filesystem, options.disk, settings.hotplug, hotplug, message) < 0)
        fuse_log(FUSE_LOG_WARNING, "sgfs: %s: %s\n",
                 settings.hotplug ? "disks added later will not be served"
                                  : "capacity changes are seen only on IO",
                 message.c_str());
    const int rc = run_loop(session.get(), filesystem.max_threads(), settings.single_threaded,
                            options.aligned_writes);
    // A positive rc is the signal that ended the loop: a normal way to stop.
    if (rc < 0) {
        fuse_log(FUSE_LOG_ERR, "sgfs: session loop failed: %s\n", std::strerror(-rc));
        return 1;
    }
    return 0;
}

} // namespace sgfs::fusefs
