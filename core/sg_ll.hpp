// One function per SCSI command, sg3_utils style: build the CDB, run it on a channel
// through the command loop (command_loop.hpp: its retry rule and counting), decode the
// reply. Each returns 0 or -errno and, on failure, a one-line message.
#pragma once

#include "channel.hpp"
#include "command_loop.hpp"
#include "sgfs/cdb.hpp"
#include "sgfs/stats.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sgfs
{

int sg_ll_test_unit_ready(Channel &channel, const CommandContext &context, std::string &message);
int sg_ll_inquiry(Channel &channel, const CommandContext &context, StandardInquiry &out,
                  std::string &message);
// The whole VPD page, trimmed to what the device returned.
int sg_ll_inquiry_vpd(Channel &channel, const CommandContext &context, std::uint8_t page,
                      std::vector<std::uint8_t> &out, std::string &message);
int sg_ll_readcap_10(Channel &channel, const CommandContext &context, Capacity &out,
                     std::string &message);
int sg_ll_readcap_16(Channel &channel, const CommandContext &context, Capacity &out,
                     std::string &message);
int sg_ll_mode_sense_10_wp(Channel &channel, const CommandContext &context, bool &write_protected,
                           std::string &message);
int sg_ll_sync_cache(Channel &channel, const CommandContext &context, std::string &message);
int sg_ll_unmap(Channel &channel, const CommandContext &context, std::span<const UnmapRange> ranges,
                std::string &message);
// WRITE SAME(16): `block` (one logical block) written to `blocks` blocks from `lba`, or
// those blocks unmapped when `unmap` and the device chooses to. The device may write every
// block before it answers: context.timeout_ms must allow for that.
int sg_ll_write_same_16(Channel &channel, const CommandContext &context, std::uint64_t lba,
                        std::uint32_t blocks, bool unmap, std::span<const std::uint8_t> block,
                        std::string &message);
// GET LBA STATUS from `lba`: the descriptors the device returned (at most
// `max_descriptors`), which start at `lba` and may end anywhere before the end of the disk.
int sg_ll_get_lba_status(Channel &channel, const CommandContext &context, std::uint64_t lba,
                         std::size_t max_descriptors, std::vector<LbaStatus> &out,
                         std::string &message);
// READ or WRITE of `span`, data at `data` (ignored in mmap mode), in `mode`.
int sg_ll_read_write(Channel &channel, const CommandContext &context, const BlockSpan &span,
                     void *data, TransferMode mode, std::string &message);

// RECEIVE COPY RESULTS, OPERATING PARAMETERS: what the LU's copy manager takes.
int sg_ll_receive_copy_operating_parameters(Channel &channel, const CommandContext &context,
                                            CopyOperatingParameters &out, std::string &message);
// EXTENDED COPY(LID1) with `parameters` (extended_copy_parameter_list) as its data-out, as a
// command to start and finish on a channel (start_command, finish_command), so that several
// run at once. `parameters` must stay valid until it is finished. The copy manager may copy
// everything before it answers: `timeout_ms` must allow for that.
Command extended_copy_command(std::span<const std::uint8_t> parameters, unsigned timeout_ms);

} // namespace sgfs
