// The file tree:
//   /            root directory
//   /sg0 ...     one regular file per disk, size = capacity
//   /by-id/<id>  symlink -> ../sg0, like /dev/disk/by-id
//   /.stats      read-only text, generated per open
// Disks are added and removed while mounted (hot plug, `all` only). Inode numbers are
// never reused: a removed disk's nodes leave their directories at once but stay findable
// by inode (st_nlink 0) until the kernel has forgotten every lookup of them, so a late
// getattr of an open file still answers, and a new disk never answers for an old inode.
// The Tree has no lock of its own: Filesystem guards it (see filesystem.hpp).
#pragma once

#include "sgfs/disk.hpp"

#include <cstdint>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <vector>

namespace sgfs::fusefs
{

using InodeNumber = std::uint64_t;
inline constexpr InodeNumber root_inode = 1; // FUSE_ROOT_ID
inline constexpr InodeNumber by_id_inode = 2;
inline constexpr InodeNumber stats_inode = 3;

inline constexpr const char *by_id_name = "by-id";
inline constexpr const char *stats_name = ".stats";

enum class NodeKind { root_dir, by_id_dir, stats_file, disk_file, by_id_link };

struct Node {
    InodeNumber inode = 0;
    NodeKind kind = NodeKind::root_dir;
    std::string name;
    InodeNumber parent = root_inode;
    std::size_t disk_index = 0; // disk_file and by_id_link: the disk's key (Filesystem's slot)
    std::string link_target;    // by_id_link: "../sg0"
    struct stat attr {
    };
    std::vector<InodeNumber> children;                       // directories: by inode, ascending
    std::map<std::string, InodeNumber, std::less<>> by_name; // directories: lookup
    std::uint64_t lookups = 0; // the kernel's references (lookup replies not yet forgotten)
    bool detached = false;     // removed from its directory; freed once lookups is 0

    bool is_directory() const { return kind == NodeKind::root_dir || kind == NodeKind::by_id_dir; }
};

// What the tree needs to know of one opened disk.
struct DiskNodeSource {
    DiskInfo info;
    // Owner and mode of the /dev/sgN node, which the disk file inherits unless the mount
    // options override them: whoever may use the sg node may use the file, nobody else.
    uid_t uid = 0;
    gid_t gid = 0;
    mode_t mode = 0600;
};

struct TreeOptions {
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    std::optional<mode_t> umask;
    uid_t mounter_uid = 0; // owner of the directories, .stats and the symlinks
    gid_t mounter_gid = 0;
    std::time_t mount_time = 0;
};

class Tree
{
  public:
    // disks[i] gets key i.
    Tree(const std::vector<DiskNodeSource> &disks, const TreeOptions &options);

    const Node *find(InodeNumber inode) const;
    const Node *lookup(InodeNumber parent, std::string_view name) const;
    // Nodes alive (in a directory, or detached but still known to the kernel).
    std::size_t node_count() const { return nodes_.size(); }
    // Inode of disk `key`'s file; 0 when it has none (never added, or removed).
    InodeNumber disk_inode(std::size_t key) const;

    // A name that appeared or went, for the kernel's dentry cache.
    struct Name {
        InodeNumber parent = 0;
        std::string name;
        InodeNumber inode = 0;
    };
    // Adds disk `key`'s file, and its by-id link unless the id is taken or no plain file
    // name; returns the names added (none when the file name is taken: the disk is left
    // out). Inodes are new, above every inode ever used.
    std::vector<Name> add_disk(std::size_t key, const DiskNodeSource &source);
    // Takes disk `key`'s file and link out of their directories; returns the names
    // removed. The nodes stay findable (st_nlink 0) until forgotten.
    std::vector<Name> remove_disk(std::size_t key);
    // A lookup reply for `inode` went to the kernel; forget() gives them back.
    void remember_lookup(InodeNumber inode);
    // The kernel dropped `count` references to `inode` (FUSE_FORGET): a detached node
    // with none left is freed.
    void forget(InodeNumber inode, std::uint64_t count);

  private:
    Node &add(NodeKind kind, std::string name, InodeNumber parent, mode_t mode, std::time_t when);
    Node &add_disk_file(std::size_t key, const DiskNodeSource &source, std::time_t when);
    Node *add_link(std::size_t key, const DiskNodeSource &source, std::time_t when);
    void detach(Node &node);

    std::map<InodeNumber, Node> nodes_;
    std::map<std::size_t, InodeNumber> disk_files_; // key -> inode of its file
    InodeNumber next_inode_ = root_inode;
    TreeOptions options_;
};

// st_blksize of a disk file: the largest transfer the disk takes in one command, rounded
// down to a power of two and capped at 1 MiB (the largest FUSE request). cp and friends
// size their buffers from it, so it decides the request size when nobody says bs=.
std::uint32_t preferred_io_size(const DiskInfo &info);

// The largest request the kernel sends us (fs.fuse.max_pages_limit defaults to 256 pages).
inline constexpr std::uint32_t max_request_bytes = 1024 * 1024;

} // namespace sgfs::fusefs
