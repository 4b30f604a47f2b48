// nullfs: the FUSE ceiling of bench/run. A FUSE file system of a few fixed-size files, each
// served from a buffer in memory, mounted and served exactly as sgfs is: the same -o
// options (session_option_string), the same FUSE_INIT settings (configure_connection,
// with the queue slots of an sgfs mount of as many disks), the same request loop
// (run_receive_loop, with as many workers) and the same per-file flags as sgfs's default
// cache=none (direct_io, no keep_cache, noflush on read-only opens). Whatever a tool gets
// from a nullfs file is what FUSE itself allows on that kernel, with no device behind it.
//
//   nullfs --size BYTES [--files N] [--queue-depth Q] MOUNTPOINT
//
// Files null0 .. null{N-1} (default 2, like the bench's two disks), each BYTES long and
// filled with 0xa5 bytes at start so that every page is real memory. Reads reply from the
// buffer (one copy, by the kernel, into the reader's pages), writes copy into it,
// copy_file_range copies between buffers (as sgfs's cp moves data without FUSE carrying
// it), a size change is accepted and ignored (the file keeps its size, as a disk does),
// fsync and flush do nothing. Overlapping concurrent writes race on the bytes, which is
// fine for a ceiling. No directory listing: names are looked up only. Serves in the
// foreground until unmounted or sent SIGTERM/SIGINT.
#include "connection.hpp"
#include "receive_loop.hpp"
#include "session.hpp"
#include "sgfs/disk.hpp"
#include "tree.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace
{

using namespace sgfs::fusefs;

constexpr fuse_ino_t first_file_inode = FUSE_ROOT_ID + 1;
constexpr double cache_timeout_seconds = 24 * 60 * 60; // the tree never changes

// One file's memory: an anonymous mapping, every page touched at start.
class Buffer
{
  public:
    explicit Buffer(std::size_t size) : size_(size)
    {
        void *memory =
            mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED)
            return;
        data_ = static_cast<char *>(memory);
        std::memset(data_, 0xa5, size_);
    }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
    ~Buffer()
    {
        if (data_ != nullptr)
            munmap(data_, size_);
    }
    bool allocated() const { return data_ != nullptr; }
    char *data() const { return data_; }

  private:
    std::size_t size_;
    char *data_ = nullptr;
};

struct NullFs {
    std::size_t file_size = 0;
    unsigned queue_slots = 0;
    std::vector<std::unique_ptr<Buffer>> files;

    // The file of `inode`, or nullptr.
    Buffer *file(fuse_ino_t inode) const
    {
        if (inode < first_file_inode || inode - first_file_inode >= files.size())
            return nullptr;
        return files[inode - first_file_inode].get();
    }
    static std::string name(std::size_t index) { return "null" + std::to_string(index); }

    void fill_attributes(fuse_ino_t inode, struct stat &attr) const
    {
        attr.st_ino = inode;
        attr.st_nlink = 1;
        attr.st_uid = getuid();
        attr.st_gid = getgid();
        if (inode == FUSE_ROOT_ID) {
            attr.st_mode = S_IFDIR | 0555;
            return;
        }
        attr.st_mode = S_IFREG | 0666;
        attr.st_size = static_cast<off_t>(file_size);
        attr.st_blocks = static_cast<blkcnt_t>((file_size + 511) / 512);
        attr.st_blksize = max_request_bytes; // what sgfs shows with max_sectors_kb >= 1024
    }
    // The bytes [offset, offset + size) cut at the end of the file: their length.
    std::size_t span(std::size_t size, off_t offset) const
    {
        if (offset < 0 || static_cast<std::size_t>(offset) >= file_size)
            return 0;
        return std::min(size, file_size - static_cast<std::size_t>(offset));
    }
};

NullFs &fs_of(fuse_req_t req)
{
    return *static_cast<NullFs *>(fuse_req_userdata(req));
}

// ---- handlers: one reply each ----

void op_init(void *userdata, fuse_conn_info *conn)
{
    configure_connection(*conn, static_cast<NullFs *>(userdata)->queue_slots);
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    const NullFs &fs = fs_of(req);
    fuse_entry_param entry{};
    entry.attr_timeout = cache_timeout_seconds;
    entry.entry_timeout = cache_timeout_seconds;
    if (parent == FUSE_ROOT_ID)
        for (std::size_t i = 0; i < fs.files.size(); ++i)
            if (NullFs::name(i) == name) {
                entry.ino = first_file_inode + i;
                fs.fill_attributes(entry.ino, entry.attr);
            }
    fuse_reply_entry(req, &entry); // ino 0: a cacheable "no such name"
}

void op_getattr(fuse_req_t req, fuse_ino_t inode, fuse_file_info *)
{
    const NullFs &fs = fs_of(req);
    if (inode != FUSE_ROOT_ID && fs.file(inode) == nullptr) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct stat attr {
    };
    fs.fill_attributes(inode, attr);
    fuse_reply_attr(req, &attr, cache_timeout_seconds);
}

// open(O_TRUNC) arrives as a size change (no atomic O_TRUNC): the file keeps its size.
void op_setattr(fuse_req_t req, fuse_ino_t inode, struct stat *, int, fuse_file_info *fi)
{
    op_getattr(req, inode, fi);
}

void op_open(fuse_req_t req, fuse_ino_t inode, fuse_file_info *fi)
{
    if (fs_of(req).file(inode) == nullptr) {
        fuse_reply_err(req, inode == FUSE_ROOT_ID ? EISDIR : ENOENT);
        return;
    }
    // sgfs's disk files with its default cache=none (Filesystem::open).
    fi->direct_io = 1;
    fi->keep_cache = 0;
    fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY ? 1 : 0;
    fuse_reply_open(req, fi);
}

void op_read(fuse_req_t req, fuse_ino_t inode, std::size_t size, off_t offset, fuse_file_info *)
{
    const NullFs &fs = fs_of(req);
    const Buffer *file = fs.file(inode);
    if (file == nullptr) {
        fuse_reply_err(req, EBADF);
        return;
    }
    const std::size_t length = fs.span(size, offset);
    fuse_reply_buf(req, length == 0 ? nullptr : file->data() + offset, length);
}

void op_write(fuse_req_t req, fuse_ino_t inode, const char *data, std::size_t size, off_t offset,
              fuse_file_info *)
{
    const NullFs &fs = fs_of(req);
    Buffer *file = fs.file(inode);
    if (file == nullptr) {
        fuse_reply_err(req, EBADF);
        return;
    }
    const std::size_t length = fs.span(size, offset);
    if (length == 0) {
        if (size == 0)
            fuse_reply_write(req, 0);
        else
            fuse_reply_err(req, ENOSPC); // like a disk file: nothing past its end
        return;
    }
    std::memcpy(file->data() + offset, data, length);
    fuse_reply_write(req, length);
}

void op_copy_file_range(fuse_req_t req, fuse_ino_t inode_in, off_t offset_in, fuse_file_info *,
                        fuse_ino_t inode_out, off_t offset_out, fuse_file_info *,
                        std::size_t length, int)
{
    const NullFs &fs = fs_of(req);
    const Buffer *in = fs.file(inode_in);
    Buffer *out = fs.file(inode_out);
    if (in == nullptr || out == nullptr) {
        fuse_reply_err(req, EBADF);
        return;
    }
    const std::size_t count = std::min(fs.span(length, offset_in), fs.span(length, offset_out));
    if (count != 0)
        std::memmove(out->data() + offset_out, in->data() + offset_in, count);
    fuse_reply_write(req, count);
}

void op_nothing(fuse_req_t req, fuse_ino_t, fuse_file_info *)
{
    fuse_reply_err(req, 0);
}
void op_fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info *)
{
    fuse_reply_err(req, 0);
}

const fuse_lowlevel_ops &operations()
{
    static const fuse_lowlevel_ops ops = [] {
        fuse_lowlevel_ops o{};
        o.init = op_init;
        o.lookup = op_lookup;
        o.getattr = op_getattr;
        o.setattr = op_setattr;
        o.open = op_open;
        o.read = op_read;
        o.write = op_write;
        o.copy_file_range = op_copy_file_range;
        o.flush = op_nothing;
        o.release = op_nothing;
        o.fsync = op_fsync;
        return o;
    }();
    return ops;
}

// ---- the session, set up and torn down as sgfs's serve() does ----

struct SessionDeleter {
    void operator()(fuse_session *session) const { fuse_session_destroy(session); }
};

int serve(NullFs &fs, const std::string &mountpoint)
{
    const std::string options = session_option_string("nullfs", "nullfs", {});
    std::vector<std::string> words{"nullfs", "-o", options};
    std::vector<char *> argv;
    argv.reserve(words.size());
    for (std::string &word : words)
        argv.push_back(word.data());
    fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
    const std::unique_ptr<fuse_session, SessionDeleter> session(
        fuse_session_new(&args, &operations(), sizeof(fuse_lowlevel_ops), &fs));
    fuse_opt_free_args(&args); // whatever copy the option parser made of them
    if (!session) {
        std::fprintf(stderr, "nullfs: libfuse refused the options '%s'\n", options.c_str());
        return 1;
    }
    if (fuse_set_signal_handlers(session.get()) != 0) {
        std::fprintf(stderr, "nullfs: cannot install signal handlers\n");
        return 1;
    }
    int status = 1;
    if (fuse_session_mount(session.get(), mountpoint.c_str()) == 0) {
        const int rc = run_receive_loop(session.get(), loop_workers(fs.queue_slots));
        if (rc < 0)
            std::fprintf(stderr, "nullfs: session loop failed: %s\n", std::strerror(-rc));
        status = rc < 0 ? 1 : 0;
        fuse_session_unmount(session.get());
    } else {
        std::fprintf(stderr, "nullfs: cannot mount on '%s'\n", mountpoint.c_str());
    }
    fuse_remove_signal_handlers(session.get());
    return status;
}

// A positive decimal number, or 0 when `text` is not one.
unsigned long long positive(const char *text)
{
    char *end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(text, &end, 10);
    return errno == 0 && end != text && *end == '\0' && text[0] != '-' ? value : 0;
}

int usage()
{
    std::fprintf(stderr, "usage: nullfs --size BYTES [--files N] [--queue-depth Q] MOUNTPOINT\n"
                         "  (the FUSE ceiling of bench/run; see bench/nullfs.cpp)\n");
    return 2;
}

} // namespace

int main(int argc, char **argv)
{
    unsigned long long size = 0;
    unsigned long long files = 2;
    unsigned long long queue_depth = sgfs::DiskOptions{}.queue_depth; // sgfs's default
    std::string mountpoint;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--size" && has_value)
            size = positive(argv[++i]);
        else if (arg == "--files" && has_value)
            files = positive(argv[++i]);
        else if (arg == "--queue-depth" && has_value)
            queue_depth = positive(argv[++i]);
        else if (mountpoint.empty() && !arg.starts_with("-"))
            mountpoint = arg;
        else
            return usage();
    }
    if (size == 0 || files == 0 || files > 64 || queue_depth == 0 || queue_depth > 64 ||
        mountpoint.empty())
        return usage();

    NullFs fs;
    fs.file_size = size;
    // An sgfs mount of `files` disks, each with `queue_depth` commands in flight.
    fs.queue_slots = static_cast<unsigned>(files * queue_depth);
    for (unsigned long long i = 0; i < files; ++i) {
        fs.files.push_back(std::make_unique<Buffer>(size));
        if (!fs.files.back()->allocated()) {
            std::fprintf(stderr, "nullfs: cannot allocate %llu bytes: %s\n", size,
                         std::strerror(errno));
            return 1;
        }
    }
    return serve(fs, mountpoint);
}
