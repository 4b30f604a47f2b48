#include "tree.hpp"

#include <algorithm>
#include <ctime>

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

Node &Tree::add(NodeKind kind, std::string name, InodeNumber parent, mode_t mode, std::time_t when)
{
    const InodeNumber inode = next_inode_++;
    Node &node = nodes_[inode];
    node.inode = inode;
    node.kind = kind;
    node.name = std::move(name);
    node.parent = parent;
    node.attr.st_ino = inode;
    node.attr.st_mode = mode;
    node.attr.st_nlink = 1;
    node.attr.st_blksize = metadata_block_size;
    node.attr.st_uid = options_.uid.value_or(options_.mounter_uid);
    node.attr.st_gid = options_.gid.value_or(options_.mounter_gid);
    node.attr.st_atim.tv_sec = when;
    node.attr.st_mtim.tv_sec = when;
    node.attr.st_ctim.tv_sec = when;
    if (inode != root_inode) {
        Node &dir = nodes_.at(parent);
        // Inodes only grow, so appending keeps the children in inode order (readdir's).
        dir.children.push_back(inode);
        dir.by_name.emplace(node.name, inode);
        dir.attr.st_mtim.tv_sec = when;
        dir.attr.st_ctim.tv_sec = when;
        if (node.is_directory())
            ++dir.attr.st_nlink;
    }
    return node;
}

Node &Tree::add_disk_file(std::size_t key, const DiskNodeSource &source, std::time_t when)
{
    const mode_t umask = options_.umask.value_or(0);
    const mode_t mode =
        options_.umask ? (disk_mode_with_umask & ~umask) : (source.mode & disk_mode_with_umask);
    Node &file = add(NodeKind::disk_file, source.info.name, root_inode, S_IFREG | mode, when);
    file.disk_index = key;
    file.attr.st_uid = options_.uid.value_or(source.uid);
    file.attr.st_gid = options_.gid.value_or(source.gid);
    file.attr.st_size = static_cast<off_t>(source.info.capacity_bytes);
    file.attr.st_blocks = static_cast<blkcnt_t>((source.info.capacity_bytes + 511) / 512);
    file.attr.st_blksize = preferred_io_size(source.info);
    disk_files_[key] = file.inode;
    return file;
}

Node *Tree::add_link(std::size_t key, const DiskNodeSource &source, std::time_t when)
{
    const std::string &id = source.info.stable_id;
    // The first disk with an id wins, like udev's by-id links; ids that are not plain
    // file names are left out rather than mangled.
    if (id.empty() || id == "." || id == ".." || id.find('/') != std::string::npos ||
        lookup(by_id_inode, id))
        return nullptr;
    Node &link = add(NodeKind::by_id_link, id, by_id_inode, S_IFLNK | 0777, when);
    link.disk_index = key;
    link.link_target = "../" + source.info.name;
    link.attr.st_size = static_cast<off_t>(link.link_target.size());
    return &link;
}

Tree::Tree(const std::vector<DiskNodeSource> &disks, const TreeOptions &options) : options_(options)
{
    const mode_t umask = options.umask.value_or(0);
    const std::time_t when = options.mount_time;
    // Inodes 1, 2, 3 are fixed (see the constants above).
    add(NodeKind::root_dir, "", root_inode, S_IFDIR | (directory_mode & ~umask), when);
    nodes_.at(root_inode).attr.st_nlink = 2;
    add(NodeKind::by_id_dir, by_id_name, root_inode, S_IFDIR | (directory_mode & ~umask), when);
    nodes_.at(by_id_inode).attr.st_nlink = 2;
    add(NodeKind::stats_file, stats_name, root_inode, S_IFREG | (stats_mode & ~umask), when);
    // The files first, then the links: ls shows sg0 sg1 ... after by-id, as always.
    for (std::size_t i = 0; i < disks.size(); ++i)
        if (!lookup(root_inode, disks[i].info.name))
            add_disk_file(i, disks[i], when);
    for (std::size_t i = 0; i < disks.size(); ++i)
        if (disk_files_.count(i) != 0)
            add_link(i, disks[i], when);
}

InodeNumber Tree::disk_inode(std::size_t key) const
{
    const auto it = disk_files_.find(key);
    return it == disk_files_.end() ? 0 : it->second;
}

std::vector<Tree::Name> Tree::add_disk(std::size_t key, const DiskNodeSource &source)
{
    std::vector<Name> added;
    if (disk_files_.count(key) != 0 || lookup(root_inode, source.info.name))
        return added;
    const std::time_t when = std::time(nullptr);
    const Node &file = add_disk_file(key, source, when);
    added.push_back({root_inode, file.name, file.inode});
    if (const Node *link = add_link(key, source, when))
        added.push_back({by_id_inode, link->name, link->inode});
    return added;
}

void Tree::detach(Node &node)
{
    Node &dir = nodes_.at(node.parent);
    std::erase(dir.children, node.inode);
    dir.by_name.erase(node.name);
    const std::time_t when = std::time(nullptr);
    dir.attr.st_mtim.tv_sec = when;
    dir.attr.st_ctim.tv_sec = when;
    node.detached = true;
    node.attr.st_nlink = 0;
    node.attr.st_ctim.tv_sec = when;
}

std::vector<Tree::Name> Tree::remove_disk(std::size_t key)
{
    std::vector<Name> removed;
    const auto file = disk_files_.find(key);
    if (file == disk_files_.end())
        return removed;
    disk_files_.erase(file);
    std::vector<InodeNumber> gone;
    for (auto &[inode, node] : nodes_)
        if (!node.detached && node.disk_index == key &&
            (node.kind == NodeKind::disk_file || node.kind == NodeKind::by_id_link))
            gone.push_back(inode);
    for (const InodeNumber inode : gone) {
        Node &node = nodes_.at(inode);
        removed.push_back({node.parent, node.name, inode});
        detach(node);
        if (node.lookups == 0)
            nodes_.erase(inode);
    }
    return removed;
}

void Tree::remember_lookup(InodeNumber inode)
{
    if (const auto it = nodes_.find(inode); it != nodes_.end())
        ++it->second.lookups;
}

void Tree::forget(InodeNumber inode, std::uint64_t count)
{
    const auto it = nodes_.find(inode);
    if (it == nodes_.end())
        return;
    Node &node = it->second;
    node.lookups -= std::min(count, node.lookups);
    if (node.detached && node.lookups == 0)
        nodes_.erase(it);
}

const Node *Tree::find(InodeNumber inode) const
{
    const auto it = nodes_.find(inode);
    return it == nodes_.end() ? nullptr : &it->second;
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
