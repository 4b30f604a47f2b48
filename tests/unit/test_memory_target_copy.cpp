// The in-memory target's copy manager (memory_target.hpp: 3PC, EXTENDED COPY(LID1), RECEIVE
// COPY RESULTS) through core's builders, decoders and command loop, and through parameter
// lists bent by hand: the expected sense is SPC-4's (with LIO's choice of COPY ABORTED, copy
// target device not reachable, for a CSCD it cannot find), the expected data the stores'.
#include "memory_target.hpp"
#include "sg_ll.hpp"

#include <cerrno>
#include <cstring>
#include <doctest/doctest.h>
#include <memory>
#include <string>
#include <vector>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

using Bytes = std::vector<std::uint8_t>;

Bytes naa(std::uint8_t id)
{
    return {0x60, 0x01, 0x40, 0x5a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, id};
}

TargetConfig lun(const std::shared_ptr<CopyRegistry> &registry, std::uint8_t id)
{
    TargetConfig config;
    config.block_count = 256;
    config.naa = naa(id);
    config.three_pc = true;
    config.copy_registry = registry;
    return config;
}

Bytes pattern(std::size_t length, std::uint8_t seed)
{
    Bytes bytes(length);
    for (std::size_t i = 0; i < length; ++i)
        bytes[i] = static_cast<std::uint8_t>(seed + i * 13 + i / 512);
    return bytes;
}

struct Rig {
    explicit Rig(TargetConfig config)
        : target(std::make_shared<MemoryTarget>(std::move(config))),
          transport(target, memory_node_facts()), channel(transport.channel())
    {
        target->poke(0, pattern(target->bytes(),
                                target->config().naa.empty() ? 0 : target->config().naa.back()));
    }
    std::shared_ptr<MemoryTarget> target;
    MemoryTransport transport;
    std::unique_ptr<Channel> channel;
};

CommandResult run(Channel &channel, Command command)
{
    CommandContext context;
    context.retries = 0;
    if (IoResult started = start_command(channel, command); !started.ok())
        return started;
    return finish_command_with_sense(channel, command, context);
}

CommandResult xcopy(Channel &channel, const Bytes &list)
{
    return run(channel, extended_copy_command(list, 5000));
}

ExtendedCopyList copy_list(std::uint8_t from, std::uint8_t to, std::uint32_t blocks,
                           std::uint64_t source_lba, std::uint64_t destination_lba)
{
    ExtendedCopyList list;
    list.targets = {{{1, 0, 3, naa(from)}, 0, 512}, {{1, 0, 3, naa(to)}, 0, 512}};
    list.segments = {{0, 1, blocks, source_lba, destination_lba}};
    return list;
}

void check_sense(const CommandResult &result, std::uint8_t key, std::uint8_t asc,
                 std::uint8_t ascq = 0)
{
    INFO(result.result.message);
    REQUIRE_FALSE(result.result.ok());
    REQUIRE(result.sense.valid);
    CHECK(result.sense.sense_key == key);
    CHECK(result.sense.asc == asc);
    CHECK(result.sense.ascq == ascq);
}

} // namespace

TEST_CASE("INQUIRY says 3PC as configured; RECEIVE COPY RESULTS gives the configured parameters")
{
    auto registry = std::make_shared<CopyRegistry>();
    TargetConfig config = lun(registry, 1);
    config.copy_manager.max_segment_descriptors = 3;
    config.copy_manager.total_concurrent_copies = 7;
    config.copy_manager.snlid = false;
    Rig rig(config);
    std::string message;
    StandardInquiry inquiry;
    REQUIRE(sg_ll_inquiry(*rig.channel, {}, inquiry, message) == 0);
    CHECK(inquiry.third_party_copy);
    CopyOperatingParameters p;
    REQUIRE(sg_ll_receive_copy_operating_parameters(*rig.channel, {}, p, message) == 0);
    CHECK_FALSE(p.supports_no_list_id);
    CHECK(p.max_cscd_descriptors == 2);
    CHECK(p.max_segment_descriptors == 3);
    CHECK(p.max_descriptor_list_length == 1024);
    CHECK(p.max_segment_length == 256U << 20);
    CHECK(p.total_concurrent_copies == 7);
    CHECK(p.data_segment_granularity_log2 == 9);
    CHECK(p.descriptor_codes == Bytes{0x02, 0xe4});

    // Less than LIO's 54 bytes, another service action, another list: invalid field in CDB.
    Command short_one = extended_copy_command({}, 1000);
    Bytes reply(64);
    short_one.request.cdb = cdb_receive_copy_operating_parameters(53);
    short_one.request.direction = DataDirection::from_device;
    short_one.request.buffer = reply.data();
    short_one.request.length = 53;
    check_sense(run(*rig.channel, short_one), 0x05, 0x24);
    Command copy_status = short_one;
    copy_status.request.cdb = cdb_receive_copy_operating_parameters(64);
    copy_status.request.cdb.bytes[1] = 0x00;
    copy_status.request.length = 64;
    check_sense(run(*rig.channel, copy_status), 0x05, 0x24);

    TargetConfig plain = lun(registry, 2);
    plain.three_pc = false;
    Rig without(plain);
    REQUIRE(sg_ll_inquiry(*without.channel, {}, inquiry, message) == 0);
    CHECK_FALSE(inquiry.third_party_copy);
    CHECK(sg_ll_receive_copy_operating_parameters(*without.channel, {}, p, message) == -EOPNOTSUPP);
    check_sense(xcopy(*without.channel, extended_copy_parameter_list(copy_list(2, 2, 1, 0, 1))),
                0x05, 0x20);
}

TEST_CASE("EXTENDED COPY between two registered targets and within one")
{
    auto registry = std::make_shared<CopyRegistry>();
    Rig a(lun(registry, 1));
    Rig b(lun(registry, 2));
    const Bytes source = a.target->peek(512 * 10, 512 * 20);
    REQUIRE(
        xcopy(*a.channel, extended_copy_parameter_list(copy_list(1, 2, 20, 10, 100))).result.ok());
    CHECK(b.target->equals(512 * 100, source));
    // Received on the destination (a pull), as LIO takes it too.
    const Bytes back = b.target->peek(0, 512 * 4);
    REQUIRE(
        xcopy(*a.channel, extended_copy_parameter_list(copy_list(2, 1, 4, 0, 200))).result.ok());
    CHECK(a.target->equals(512 * 200, back));
    // Within one target, overlapping: memmove.
    Bytes store = a.target->peek(0, a.target->bytes());
    std::memmove(store.data() + 512 * 3, store.data(), 512 * 8);
    REQUIRE(xcopy(*a.channel, extended_copy_parameter_list(copy_list(1, 1, 8, 0, 3))).result.ok());
    CHECK(a.target->peek(0, a.target->bytes()) == store);
    // A parameter list of zero bytes: nothing, and no error.
    CHECK(xcopy(*a.channel, {}).result.ok());
    CHECK(a.target->count(opcode::extended_copy) == 4);
    CHECK(a.target->violations().empty());
}

TEST_CASE("EXTENDED COPY refusals: the sense SPC-4 and LIO give")
{
    auto registry = std::make_shared<CopyRegistry>();
    Rig a(lun(registry, 1));
    Rig b(lun(registry, 2));
    const Bytes good = extended_copy_parameter_list(copy_list(1, 2, 4, 0, 0));

    // A designator nobody registered, and a target that went away: not reachable.
    check_sense(xcopy(*a.channel, extended_copy_parameter_list(copy_list(1, 9, 4, 0, 0))), 0x0a,
                0x0d, 0x02);
    {
        Rig gone(lun(registry, 3));
    }
    check_sense(xcopy(*a.channel, extended_copy_parameter_list(copy_list(1, 3, 4, 0, 0))), 0x0a,
                0x0d, 0x02);
    // A copy between two other LUs: the LU the command came to takes no part.
    Rig c(lun(registry, 4));
    check_sense(xcopy(*c.channel, good), 0x0a, 0x0d, 0x02);

    Bytes list = good;
    list[15] = 1; // inline data
    check_sense(xcopy(*a.channel, list), 0x05, 0x26);
    list = good;
    list[16] = 0xe5; // not an identification descriptor
    check_sense(xcopy(*a.channel, list), 0x05, 0x26, 0x07);
    list = good;
    list[20] = 0x02; // ASCII code set
    check_sense(xcopy(*a.channel, list), 0x05, 0x26);
    list = good;
    list[47] = 0x00; // DISK BLOCK LENGTH 0x000200 -> 0x000000
    list[46] = 0x00;
    check_sense(xcopy(*a.channel, list), 0x05, 0x26);
    list = good;
    list[80] = 0x03; // not block to block
    check_sense(xcopy(*a.channel, list), 0x05, 0x26, 0x09);
    list = good;
    list[87] = 0x05; // destination CSCD index past the list
    check_sense(xcopy(*a.channel, list), 0x05, 0x26);
    list = good;
    list[11] = 27; // segment list length not a multiple of 28
    check_sense(xcopy(*a.channel, list), 0x05, 0x26);
    list = good;
    list.resize(list.size() - 1); // shorter than its lengths say
    check_sense(xcopy(*a.channel, list), 0x05, 0x1a);
    check_sense(xcopy(*a.channel, Bytes(15, 0)), 0x05, 0x1a);
    // Past the end of the destination.
    check_sense(xcopy(*a.channel, extended_copy_parameter_list(copy_list(1, 2, 4, 0, 254))), 0x05,
                0x21);

    ExtendedCopyList three = copy_list(1, 2, 4, 0, 0);
    three.targets.push_back(three.targets.back());
    check_sense(xcopy(*a.channel, extended_copy_parameter_list(three)), 0x05, 0x26, 0x06);
    ExtendedCopyList two_segments = copy_list(1, 2, 4, 0, 0);
    two_segments.segments.push_back(two_segments.segments.back());
    check_sense(xcopy(*a.channel, extended_copy_parameter_list(two_segments)), 0x05, 0x26, 0x08);

    TargetConfig protected_config = lun(registry, 5);
    protected_config.write_protected = true;
    Rig locked(protected_config);
    check_sense(xcopy(*a.channel, extended_copy_parameter_list(copy_list(1, 5, 4, 0, 0))), 0x07,
                0x27);
    CHECK(a.target->violations().empty());
}

TEST_CASE("the copy_aborted fault copies its blocks, then COPY ABORTED")
{
    auto registry = std::make_shared<CopyRegistry>();
    Rig a(lun(registry, 1));
    Rig b(lun(registry, 2));
    Fault fault;
    fault.kind = FaultKind::copy_aborted;
    fault.on = Ops::extended_copy;
    fault.copied_blocks = 3;
    const std::size_t rule = a.target->inject(fault);
    const Bytes before = b.target->peek(0, b.target->bytes());
    check_sense(xcopy(*a.channel, extended_copy_parameter_list(copy_list(1, 2, 8, 0, 0))), 0x0a,
                0x0d, 0x02);
    CHECK(a.target->fired(rule) == 1);
    Bytes expected = before;
    const Bytes copied = a.target->peek(0, 512 * 3);
    std::copy(copied.begin(), copied.end(), expected.begin());
    CHECK(b.target->peek(0, b.target->bytes()) == expected);
    // The fault is for EXTENDED COPY: another command that matches it runs as usual.
    fault.on = Ops::any;
    fault.times = Fault::always;
    a.target->clear_faults();
    a.target->inject(fault);
    std::string message;
    CHECK(sg_ll_test_unit_ready(*a.channel, {}, message) == 0);
}
