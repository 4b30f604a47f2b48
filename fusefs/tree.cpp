#include "tree.hpp"

#include <algorithm>

namespace sgfs::fusefs
{
namespace
{

constexpr mode_t directory_mode = 0555; // nothing can be created in them
constexpr mode_t stats_mode = 0444;
constexpr mode_t disk_mode_with_umask = 0666; // like vfat's umask=: rw for all, minus mask
constexpr std::uint32_t fallback_io_size = 64 * 1024;
constexpr blksize_t metadata_block_size = 4096;

std::uint32_t round_down_to_power_of_two(std::uint32_t value)
{
    std::uint32_t power = 1;
    while (power <= value / 2)
        power *= 2;
    return power;
}

} // namespace

std::uint32_t preferred_io_size(const DiskInfo &info)
{
    std::uint32_t size = info.max_transfer_bytes == 0 ? fallback_io_size : info.max_transfer_bytes;
    size = round_down_to_power_of_two(std::min(size, max_request_bytes));
    // A transfer smaller than one block cannot be: the device would reject the command.
    return std::max({size, info.logical_block_size, std::uint32_t{512}});
}

Node &Tree::add(NodeKind kind, std::string name, InodeNumber parent, mode_t mode)
{
    Node &node = nodes_.emplace_back();
    node.inode = nodes_.size();
    node.kind = kind;
    node.name = std::move(name);
    node.parent = parent;
    node.attr.st_ino = node.inode;
    node.attr.st_mode = mode;
    node.attr.st_nlink = 1;
    node.attr.st_blksize = metadata_block_size;
    if (node.inode != root_inode) {
        Node &dir = nodes_[parent - 1];
        dir.children.push_back(node.inode);
        dir.by_name.emplace(node.name, node.inode);
    }
    return node;
}

Tree::Tree(const std::vector<DiskNodeSource> &disks, const TreeOptions &options)
{
    const mode_t umask = options.umask.value_or(0);
    const uid_t owner = options.uid.value_or(options.mounter_uid);
    const gid_t group = options.gid.value_or(options.mounter_gid);

    // Inodes 1, 2, 3 are fixed (see tree.hpp); the references below stay valid because
    // the vector never reallocates: its final size is known here.
    nodes_.reserve(3 + 2 * disks.size());
    add(NodeKind::root_dir, "", root_inode, S_IFDIR | (directory_mode & ~umask));
    add(NodeKind::by_id_dir, by_id_name, root_inode, S_IFDIR | (directory_mode & ~umask));
    add(NodeKind::stats_file, stats_name, root_inode, S_IFREG | (stats_mode & ~umask));

    first_disk_inode_ = nodes_.size() + 1;
    for (std::size_t i = 0; i < disks.size(); ++i) {
        const DiskNodeSource &source = disks[i];
        const mode_t mode =
            options.umask ? (disk_mode_with_umask & ~umask) : (source.mode & disk_mode_with_umask);
        Node &file = add(NodeKind::disk_file, source.info.name, root_inode, S_IFREG | mode);
        file.disk_index = i;
        file.attr.st_uid = options.uid.value_or(source.uid);
        file.attr.st_gid = options.gid.value_or(source.gid);
        file.attr.st_size = static_cast<off_t>(source.info.capacity_bytes);
        file.attr.st_blocks = static_cast<blkcnt_t>((source.info.capacity_bytes + 511) / 512);
        file.attr.st_blksize = preferred_io_size(source.info);
    }

    for (std::size_t i = 0; i < disks.size(); ++i) {
        const std::string &id = disks[i].info.stable_id;
        // The first disk with an id wins, like udev's by-id links; ids that are not
        // plain file names are left out rather than mangled.
        if (id.empty() || id == "." || id == ".." || id.find('/') != std::string::npos ||
            lookup(by_id_inode, id))
            continue;
        Node &link = add(NodeKind::by_id_link, id, by_id_inode, S_IFLNK | 0777);
        link.disk_index = i;
        link.link_target = "../" + disks[i].info.name;
        link.attr.st_size = static_cast<off_t>(link.link_target.size());
    }

    for (Node &node : nodes_) {
        if (node.kind != NodeKind::disk_file) {
            node.attr.st_uid = owner;
            node.attr.st_gid = group;
        }
        if (node.is_directory()) {
            std::size_t subdirectories = 0;
            for (InodeNumber child : node.children)
                subdirectories += nodes_[child - 1].is_directory() ? 1 : 0;
            node.attr.st_nlink = 2 + subdirectories;
        }
        node.attr.st_atim.tv_sec = options.mount_time;
        node.attr.st_mtim.tv_sec = options.mount_time;
        node.attr.st_ctim.tv_sec = options.mount_time;
    }
}

const Node *Tree::find(InodeNumber inode) const
{
    if (inode < 1 || inode > nodes_.size())
        return nullptr;
    return &nodes_[inode - 1];
}

const Node *Tree::lookup(InodeNumber parent, std::string_view name) const
{
    const Node *dir = find(parent);
    if (!dir || !dir->is_directory())
        return nullptr;
    const auto it = dir->by_name.find(name);
    return it == dir->by_name.end() ? nullptr : find(it->second);
}

} // namespace sgfs::fusefs
