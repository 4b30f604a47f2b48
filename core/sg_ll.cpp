#include "sg_ll.hpp"

#include <algorithm>
#include <cerrno>

namespace sgfs
{
namespace
{

Command plain_command(const Cdb &cdb, DataDirection direction, void *data, std::size_t length,
                      const CommandContext &context)
{
    Command command;
    command.request.cdb = cdb;
    command.request.direction = direction;
    command.request.buffer = data;
    command.request.length = length;
    command.request.timeout_ms = context.timeout_ms;
    return command;
}

int run(Channel &channel, Command &command, const CommandContext &context, std::string &message)
{
    IoResult result = run_command(channel, command, context);
    if (!result.ok())
        message = std::move(result.message);
    return result.error;
}

// Data-in: `data` is trimmed to what the device returned.
int run_data_in(Channel &channel, const CommandContext &context, const Cdb &cdb,
                std::vector<std::uint8_t> &data, std::string &message)
{
    Command command =
        plain_command(cdb, DataDirection::from_device, data.data(), data.size(), context);
    IoResult result = run_command(channel, command, context);
    if (!result.ok()) {
        message = std::move(result.message);
        return result.error;
    }
    data.resize(std::min<std::size_t>(data.size(), result.bytes));
    return 0;
}

int run_no_data(Channel &channel, const CommandContext &context, const Cdb &cdb,
                std::string &message)
{
    Command command = plain_command(cdb, DataDirection::none, nullptr, 0, context);
    return run(channel, command, context, message);
}

int malformed(const Cdb &cdb, std::string &message)
{
    message = command_name(cdb) + ": malformed reply from device";
    return -EPROTO;
}

// Data-in of at most `length` bytes, handed to decode(reply) (0 or -errno from a decoder).
template <typename Decode>
int run_and_decode(Channel &channel, const CommandContext &context, const Cdb &cdb,
                   std::size_t length, Decode &&decode, std::string &message)
{
    std::vector<std::uint8_t> data(length);
    if (int rc = run_data_in(channel, context, cdb, data, message); rc != 0)
        return rc;
    return decode(std::span<const std::uint8_t>(data)) == 0 ? 0 : malformed(cdb, message);
}

} // namespace

int sg_ll_test_unit_ready(Channel &channel, const CommandContext &context, std::string &message)
{
    return run_no_data(channel, context, cdb_test_unit_ready(), message);
}

int sg_ll_inquiry(Channel &channel, const CommandContext &context, StandardInquiry &out,
                  std::string &message)
{
    return run_and_decode(
        channel, context, cdb_inquiry(false, 0, 96), 96,
        [&](std::span<const std::uint8_t> reply) { return decode_standard_inquiry(reply, out); },
        message);
}

int sg_ll_inquiry_vpd(Channel &channel, const CommandContext &context, std::uint8_t page,
                      std::vector<std::uint8_t> &out, std::string &message)
{
    const Cdb cdb = cdb_inquiry(true, page, 4096);
    out.assign(4096, 0);
    if (int rc = run_data_in(channel, context, cdb, out, message); rc != 0)
        return rc;
    if (out.size() < 4 || out[1] != page)
        return malformed(cdb, message);
    const std::size_t length = 4 + ((std::size_t{out[2]} << 8) | out[3]);
    if (length < out.size())
        out.resize(length);
    return 0;
}

int sg_ll_readcap_10(Channel &channel, const CommandContext &context, Capacity &out,
                     std::string &message)
{
    return run_and_decode(
        channel, context, cdb_read_capacity_10(), 8,
        [&](std::span<const std::uint8_t> reply) { return decode_read_capacity_10(reply, out); },
        message);
}

int sg_ll_readcap_16(Channel &channel, const CommandContext &context, Capacity &out,
                     std::string &message)
{
    return run_and_decode(
        channel, context, cdb_read_capacity_16(32), 32,
        [&](std::span<const std::uint8_t> reply) { return decode_read_capacity_16(reply, out); },
        message);
}

int sg_ll_mode_sense_10_wp(Channel &channel, const CommandContext &context, bool &write_protected,
                           std::string &message)
{
    return run_and_decode(
        channel, context, cdb_mode_sense_10(0x3f, 512, true), 512,
        [&](std::span<const std::uint8_t> reply) {
            return decode_mode_sense_10_write_protect(reply, write_protected);
        },
        message);
}

int sg_ll_sync_cache(Channel &channel, const CommandContext &context, std::string &message)
{
    return run_no_data(channel, context, cdb_synchronize_cache_10(), message);
}

int sg_ll_unmap(Channel &channel, const CommandContext &context, std::span<const UnmapRange> ranges,
                std::string &message)
{
    std::vector<std::uint8_t> parameters = unmap_parameter_list(ranges);
    Command command =
        plain_command(cdb_unmap(static_cast<std::uint16_t>(parameters.size())),
                      DataDirection::to_device, parameters.data(), parameters.size(), context);
    return run(channel, command, context, message);
}

int sg_ll_write_same_16(Channel &channel, const CommandContext &context, std::uint64_t lba,
                        std::uint32_t blocks, bool unmap, std::span<const std::uint8_t> block,
                        std::string &message)
{
    // The transport only reads a data-out buffer; SgRequest has one pointer for both ways.
    Command command =
        plain_command(cdb_write_same_16(lba, blocks, unmap), DataDirection::to_device,
                      const_cast<std::uint8_t *>(block.data()), block.size(), context);
    return run(channel, command, context, message);
}

int sg_ll_get_lba_status(Channel &channel, const CommandContext &context, std::uint64_t lba,
                         std::size_t max_descriptors, std::vector<LbaStatus> &out,
                         std::string &message)
{
    constexpr std::size_t header = 8;
    constexpr std::size_t descriptor = 16;
    const std::size_t length = header + descriptor * std::max<std::size_t>(1, max_descriptors);
    return run_and_decode(
        channel, context, cdb_get_lba_status(lba, static_cast<std::uint32_t>(length)), length,
        [&](std::span<const std::uint8_t> reply) { return decode_get_lba_status(reply, out); },
        message);
}

int sg_ll_read_write(Channel &channel, const CommandContext &context, const BlockSpan &span,
                     void *data, TransferMode mode, std::string &message)
{
    Command command = block_command(span, data, mode, context.timeout_ms);
    return run(channel, command, context, message);
}

int sg_ll_receive_copy_operating_parameters(Channel &channel, const CommandContext &context,
                                            CopyOperatingParameters &out, std::string &message)
{
    // LIO refuses an allocation length below 54 bytes; 44 fixed bytes and the codes fit.
    constexpr std::size_t length = 256;
    return run_and_decode(
        channel, context, cdb_receive_copy_operating_parameters(length), length,
        [&](std::span<const std::uint8_t> reply) {
            return decode_copy_operating_parameters(reply, out);
        },
        message);
}

Command extended_copy_command(std::span<const std::uint8_t> parameters, unsigned timeout_ms)
{
    CommandContext context;
    context.timeout_ms = timeout_ms;
    // The transport only reads a data-out buffer; SgRequest has one pointer for both ways.
    return plain_command(cdb_extended_copy_lid1(static_cast<std::uint32_t>(parameters.size())),
                         DataDirection::to_device, const_cast<std::uint8_t *>(parameters.data()),
                         parameters.size(), context);
}

} // namespace sgfs
