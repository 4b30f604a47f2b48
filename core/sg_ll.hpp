// One function per SCSI command, sg3_utils style: build the CDB, run it through an sg fd
// with the retry policy, decode the reply. Each returns 0 or -errno and, on failure, a
// one-line message.
#pragma once

#include "sg_transport.hpp"
#include "sgfs/cdb.hpp"
#include "sgfs/stats.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sgfs
{

struct CommandContext {
    unsigned timeout_ms = 60000;
    unsigned retries = 3;           // extra attempts for retryable outcomes
    DeviceStats *stats = nullptr;   // counts retries, errors and transfer modes
    DataPath path = DataPath::none; // what data commands are for, in the per-path counts
    bool staged = false;            // sgfs copies the data in user space (see DeviceStats)
};

// Runs `request`, retrying unit attention, aborted command and busy. Counts the
// requested and done transfer mode of the successful attempt.
int sg_ll_run(const SgFd &fd, const SgRequest &request, const CommandContext &context,
              SgCompletion &done, std::string &message);

int sg_ll_test_unit_ready(const SgFd &fd, const CommandContext &context, std::string &message);
int sg_ll_inquiry(const SgFd &fd, const CommandContext &context, StandardInquiry &out,
                  std::string &message);
// The whole VPD page, trimmed to what the device returned.
int sg_ll_inquiry_vpd(const SgFd &fd, const CommandContext &context, std::uint8_t page,
                      std::vector<std::uint8_t> &out, std::string &message);
int sg_ll_readcap_10(const SgFd &fd, const CommandContext &context, Capacity &out,
                     std::string &message);
int sg_ll_readcap_16(const SgFd &fd, const CommandContext &context, Capacity &out,
                     std::string &message);
int sg_ll_mode_sense_10_wp(const SgFd &fd, const CommandContext &context, bool &write_protected,
                           std::string &message);
int sg_ll_sync_cache(const SgFd &fd, const CommandContext &context, std::string &message);
int sg_ll_unmap(const SgFd &fd, const CommandContext &context, std::span<const UnmapRange> ranges,
                std::string &message);
// WRITE SAME(16): `block` (one logical block) written to `blocks` blocks from `lba`, or
// those blocks unmapped when `unmap` and the device chooses to. The device may write every
// block before it answers: context.timeout_ms must allow for that.
int sg_ll_write_same_16(const SgFd &fd, const CommandContext &context, std::uint64_t lba,
                        std::uint32_t blocks, bool unmap, std::span<const std::uint8_t> block,
                        std::string &message);

struct BlockTransfer {
    bool write = false;
    std::uint64_t lba = 0;
    std::uint32_t blocks = 0;
    std::uint32_t block_size = 512;
    void *buffer = nullptr; // ignored in mmap mode
    TransferMode mode = TransferMode::indirect;
    bool fua = false;
};
int sg_ll_read_write(const SgFd &fd, const CommandContext &context, const BlockTransfer &transfer,
                     std::string &message);

} // namespace sgfs
