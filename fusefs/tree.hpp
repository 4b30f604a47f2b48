// The file tree, fixed at mount time:
//   /            root directory
//   /sg0 ...     one regular file per disk, size = capacity
//   /by-id/<id>  symlink -> ../sg0, like /dev/disk/by-id
//   /.stats      read-only text, generated per open
// Nothing is ever added or removed after mount, so the tree needs no lock and inode
// numbers need no lookup counting: forget() has nothing to free.
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
    std::size_t disk_index = 0; // disk_file and by_id_link: index into the disk list
    std::string link_target;    // by_id_link: "../sg0"
    struct stat attr {
    };
    std::vector<InodeNumber> children;                       // directories: readdir order
    std::map<std::string, InodeNumber, std::less<>> by_name; // directories: lookup

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
    Tree(const std::vector<DiskNodeSource> &disks, const TreeOptions &options);

    const Node *find(InodeNumber inode) const;
    const Node *lookup(InodeNumber parent, std::string_view name) const;
    std::size_t node_count() const { return nodes_.size(); }
    // Inode of disk `index`'s file.
    InodeNumber disk_inode(std::size_t index) const { return first_disk_inode_ + index; }

  private:
    Node &add(NodeKind kind, std::string name, InodeNumber parent, mode_t mode);

    std::vector<Node> nodes_; // nodes_[inode - 1]
    InodeNumber first_disk_inode_ = 0;
};

// st_blksize of a disk file: the largest transfer the disk takes in one command, rounded
// down to a power of two and capped at 1 MiB (the largest FUSE request). cp and friends
// size their buffers from it, so it decides the request size when nobody says bs=.
std::uint32_t preferred_io_size(const DiskInfo &info);

// The largest request the kernel sends us (fs.fuse.max_pages_limit defaults to 256 pages).
inline constexpr std::uint32_t max_request_bytes = 1024 * 1024;

} // namespace sgfs::fusefs
