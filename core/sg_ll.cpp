#include "sg_ll.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace sgfs
{
namespace
{

int run_data_in(const SgFd &fd, const CommandContext &context, const Cdb &cdb,
                std::vector<std::uint8_t> &data, std::string &message)
{
    SgRequest request;
    request.cdb = cdb;
    request.direction = DataDirection::from_device;
    request.buffer = data.data();
    request.length = data.size();
    request.timeout_ms = context.timeout_ms;
    SgCompletion done;
    if (int rc = sg_ll_run(fd, request, context, done, message); rc != 0)
        return rc;
    if (done.residual > 0 && static_cast<std::size_t>(done.residual) <= data.size())
        data.resize(data.size() - static_cast<std::size_t>(done.residual));
    return 0;
}

int run_no_data(const SgFd &fd, const CommandContext &context, const Cdb &cdb, std::string &message)
{
    SgRequest request;
    request.cdb = cdb;
    request.timeout_ms = context.timeout_ms;
    SgCompletion done;
    return sg_ll_run(fd, request, context, done, message);
}

// A unit attention is reported once and clears: retry at once. A busy or becoming-ready
// device needs time, as the kernel's own retries give it.
void wait_before_retry(ErrorCategory category, unsigned attempt)
{
    if (category == ErrorCategory::unit_attention)
        return;
    const unsigned delay_ms = std::min(1000U, 50U << std::min(attempt, 5U));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
}

int malformed(const Cdb &cdb, std::string &message)
{
    message = command_name(cdb) + ": malformed reply from device";
    return -EPROTO;
}

} // namespace

int sg_ll_run(const SgFd &fd, const SgRequest &request, const CommandContext &context,
              SgCompletion &done, std::string &message)
{
    for (unsigned attempt = 0;; ++attempt) {
        if (int rc = fd.execute(request, done); rc != 0) {
            message = command_name(request.cdb) + ": SG_IO failed: " + std::strerror(-rc);
            if (context.stats != nullptr)
                context.stats->count_error(rc == -ENODEV ? ErrorCategory::transport_error
                                                         : ErrorCategory::driver_error);
            return rc;
        }
        const CommandOutcome &outcome = done.outcome;
        if (context.stats != nullptr && outcome.category != ErrorCategory::ok)
            context.stats->count_error(outcome.category);
        if (outcome.ok()) {
            if (context.stats != nullptr && request.length > 0)
                context.stats->count_command(context.path, request.mode, done.done_mode,
                                             request.length, context.staged);
            return 0;
        }
        if (!outcome.retryable || attempt >= context.retries) {
            message = outcome.message;
            return -outcome.error;
        }
        if (context.stats != nullptr)
            context.stats->count_retry();
        wait_before_retry(outcome.category, attempt);
    }
}

int sg_ll_test_unit_ready(const SgFd &fd, const CommandContext &context, std::string &message)
{
    return run_no_data(fd, context, cdb_test_unit_ready(), message);
}

int sg_ll_inquiry(const SgFd &fd, const CommandContext &context, StandardInquiry &out,
                  std::string &message)
{
    const Cdb cdb = cdb_inquiry(false, 0, 96);
    std::vector<std::uint8_t> data(96);
    if (int rc = run_data_in(fd, context, cdb, data, message); rc != 0)
        return rc;
    return decode_standard_inquiry(data, out) == 0 ? 0 : malformed(cdb, message);
}

int sg_ll_inquiry_vpd(const SgFd &fd, const CommandContext &context, std::uint8_t page,
                      std::vector<std::uint8_t> &out, std::string &message)
{
    const Cdb cdb = cdb_inquiry(true, page, 4096);
    out.assign(4096, 0);
    if (int rc = run_data_in(fd, context, cdb, out, message); rc != 0)
        return rc;
    if (out.size() < 4 || out[1] != page)
        return malformed(cdb, message);
    const std::size_t length = 4 + ((std::size_t{out[2]} << 8) | out[3]);
    if (length < out.size())
        out.resize(length);
    return 0;
}

int sg_ll_readcap_10(const SgFd &fd, const CommandContext &context, Capacity &out,
                     std::string &message)
{
    const Cdb cdb = cdb_read_capacity_10();
    std::vector<std::uint8_t> data(8);
    if (int rc = run_data_in(fd, context, cdb, data, message); rc != 0)
        return rc;
    return decode_read_capacity_10(data, out) == 0 ? 0 : malformed(cdb, message);
}

int sg_ll_readcap_16(const SgFd &fd, const CommandContext &context, Capacity &out,
                     std::string &message)
{
    const Cdb cdb = cdb_read_capacity_16(32);
    std::vector<std::uint8_t> data(32);
    if (int rc = run_data_in(fd, context, cdb, data, message); rc != 0)
        return rc;
    return decode_read_capacity_16(data, out) == 0 ? 0 : malformed(cdb, message);
}

int sg_ll_mode_sense_10_wp(const SgFd &fd, const CommandContext &context, bool &write_protected,
                           std::string &message)
{
    const Cdb cdb = cdb_mode_sense_10(0x3f, 512, true);
    std::vector<std::uint8_t> data(512);
    if (int rc = run_data_in(fd, context, cdb, data, message); rc != 0)
        return rc;
    return decode_mode_sense_10_write_protect(data, write_protected) == 0 ? 0
                                                                          : malformed(cdb, message);
}

int sg_ll_sync_cache(const SgFd &fd, const CommandContext &context, std::string &message)
{
    return run_no_data(fd, context, cdb_synchronize_cache_10(), message);
}

int sg_ll_unmap(const SgFd &fd, const CommandContext &context, std::span<const UnmapRange> ranges,
                std::string &message)
{
    std::vector<std::uint8_t> parameters = unmap_parameter_list(ranges);
    SgRequest request;
    request.cdb = cdb_unmap(static_cast<std::uint16_t>(parameters.size()));
    request.direction = DataDirection::to_device;
    request.buffer = parameters.data();
    request.length = parameters.size();
    request.timeout_ms = context.timeout_ms;
    SgCompletion done;
    return sg_ll_run(fd, request, context, done, message);
}

int sg_ll_write_same_16(const SgFd &fd, const CommandContext &context, std::uint64_t lba,
                        std::uint32_t blocks, bool unmap, std::span<const std::uint8_t> block,
                        std::string &message)
{
    SgRequest request;
    request.cdb = cdb_write_same_16(lba, blocks, unmap);
    request.direction = DataDirection::to_device;
    // The transport only reads a data-out buffer; SgRequest has one pointer for both ways.
    request.buffer = const_cast<std::uint8_t *>(block.data());
    request.length = block.size();
    request.timeout_ms = context.timeout_ms;
    SgCompletion done;
    return sg_ll_run(fd, request, context, done, message);
}

int sg_ll_read_write(const SgFd &fd, const CommandContext &context, const BlockTransfer &transfer,
                     std::string &message)
{
    SgRequest request;
    request.cdb = transfer.write ? cdb_write(transfer.lba, transfer.blocks, transfer.fua)
                                 : cdb_read(transfer.lba, transfer.blocks, transfer.fua);
    request.direction = transfer.write ? DataDirection::to_device : DataDirection::from_device;
    request.buffer = transfer.buffer;
    request.length = std::size_t{transfer.blocks} * transfer.block_size;
    request.mode = transfer.mode;
    request.timeout_ms = context.timeout_ms;
    SgCompletion done;
    if (int rc = sg_ll_run(fd, request, context, done, message); rc != 0)
        return rc;
    if (done.residual != 0) {
        message = command_name(request.cdb) + ": short transfer, " + std::to_string(done.residual) +
                  " bytes not moved";
        if (context.stats != nullptr)
            context.stats->count_error(ErrorCategory::other);
        return -EIO;
    }
    return 0;
}

} // namespace sgfs
