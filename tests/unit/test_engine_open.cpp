// Engine::open against the in-memory target: what the probe makes of the device (DiskInfo)
// and what it refuses. The oracle is the target's configuration (the device's own answers)
// and its log and channel count.
#include "engine_fixture.hpp"

#include <algorithm>
#include <cerrno>
#include <doctest/doctest.h>
#include <string>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

// Opens and expects a refusal: its -errno and message.
int refused(const TargetConfig &config, const DiskOptions &options, std::string &message)
{
    auto target = std::make_shared<MemoryTarget>(config);
    std::unique_ptr<Engine> engine;
    const int rc = open_engine(target, options, engine, message);
    CHECK(engine == nullptr);
    return rc;
}

// The target's transport, whose channel opens fail from the `failing`-th on (1: the first).
class FailingTransport final : public Transport
{
  public:
    FailingTransport(std::shared_ptr<MemoryTarget> target, unsigned failing)
        : inner_(std::move(target), memory_node_facts()), failing_(failing)
    {
    }
    NodeFacts facts() const override { return inner_.facts(); }
    int open_channel(const ChannelSpec &spec, std::unique_ptr<Channel> &out,
                     std::string &message) override
    {
        if (++opened_ >= failing_) {
            message = "too many open files";
            return -EMFILE;
        }
        return inner_.open_channel(spec, out, message);
    }

  private:
    MemoryTransport inner_;
    unsigned failing_;
    unsigned opened_ = 0;
};

bool contains(const std::string &text, const std::string &part)
{
    return text.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("the probe: identity, capacity and block size from the device")
{
    for (const std::uint32_t block_size : {512U, 4096U}) {
        CAPTURE(block_size);
        TargetConfig config;
        config.block_size = block_size;
        config.block_count = 300;
        config.vendor = "ACME";
        config.product = "THING";
        config.revision = "42";
        EngineFixture f(config);
        const DiskInfo &info = f.engine->info();
        CHECK(info.capacity_bytes == std::uint64_t{300} * block_size);
        CHECK(info.capacity_bytes == f.target->bytes());
        CHECK(info.logical_block_size == block_size);
        // The target reports one logical block per physical block.
        CHECK(info.physical_block_size == block_size);
        CHECK(info.vendor == "ACME");
        CHECK(info.model == "THING");
        CHECK(info.revision == "42");
        CHECK(info.device_type == 0);
        CHECK(info.sg_path == "/dev/sg0");
        CHECK(info.name == "sg0");
        CHECK(info.hctl == "9:0:0:0");
        CHECK_FALSE(info.read_only);
        CHECK_FALSE(info.write_protected);
        // A whole number of blocks per command.
        CHECK(info.max_transfer_bytes % block_size == 0);
    }
}

TEST_CASE("stable_id: the NAA designator first, else the T10 vendor id")
{
    SUBCASE("NAA 6 (16 bytes)")
    {
        EngineFixture f;
        CHECK(f.engine->info().stable_id == "wwn-0x6001405a177e57000000000000000001");
    }
    SUBCASE("NAA 5 (8 bytes)")
    {
        TargetConfig config;
        config.naa = {0x50, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd};
        EngineFixture f(config);
        CHECK(f.engine->info().stable_id == "wwn-0x500123456789abcd");
    }
    SUBCASE("no NAA: vendor and serial")
    {
        TargetConfig config;
        config.naa.clear();
        config.vendor = "SGFS";
        config.serial = "XY77";
        EngineFixture f(config);
        CHECK(f.engine->info().stable_id == "t10-SGFS_XY77");
    }
}

TEST_CASE("max_transfer_bytes: the least of VPD B0, BLKSECTGET, the reserve and max_io")
{
    TargetConfig config;
    DiskOptions options = test_options();
    options.reserve = std::size_t{256} << 10;
    std::uint32_t expected = 0;
    std::uint32_t granted = 256U << 10;
    SUBCASE("the reserve asked for")
    {
        expected = 256U << 10;
    }
    SUBCASE("the reserve the driver grants")
    {
        config.max_reserve = std::size_t{96} << 10;
        expected = granted = 96U << 10;
    }
    SUBCASE("VPD B0's maximum transfer length")
    {
        config.max_transfer_blocks = 24;
        expected = 24 * 512;
    }
    SUBCASE("BLKSECTGET of the queue")
    {
        config.max_transfer_bytes = 40960;
        expected = 40960;
    }
    SUBCASE("BLKSECTGET failing: ignored")
    {
        config.max_transfer_bytes = -ENOTTY;
        expected = 256U << 10;
    }
    SUBCASE("max_io, rounded down to whole blocks")
    {
        options.max_io = 10000;
        expected = 19 * 512;
    }
    SUBCASE("max_io of a 4096-byte-block disk")
    {
        config.block_size = 4096;
        options.max_io = 3 * 4096 + 100;
        expected = 3 * 4096;
    }
    CAPTURE(expected);
    EngineFixture f(config, options);
    CHECK(f.engine->info().max_transfer_bytes == expected);
    CHECK(f.engine->info().reserve_granted == granted);
    // The split the device sees: a long read comes as commands of that size.
    Bytes data(4 * std::size_t{expected});
    REQUIRE(f.disk().pread(data.data(), data.size(), 0).ok());
    for (const CommandRecord &record : f.data_commands())
        CHECK(std::uint64_t{record.blocks} * config.block_size <= expected);
    CHECK(f.data_commands().size() == 4);
}

TEST_CASE("write protect: served read-only, writes refused before any command")
{
    TargetConfig config;
    config.write_protected = true;
    EngineFixture f(config);
    CHECK(f.engine->info().write_protected);
    CHECK(f.engine->info().read_only);
    const Bytes data(512, 1);
    const IoResult result = f.disk().pwrite(data.data(), data.size(), 0);
    CHECK(result.error == -EROFS);
    CHECK(f.target->log().empty());
    // Reads work.
    Bytes read(512);
    CHECK(f.disk().pread(read.data(), read.size(), 0).bytes == 512);
}

TEST_CASE("the read_only option: read-only without write protect")
{
    DiskOptions options = test_options();
    options.read_only = true;
    EngineFixture f({}, options);
    CHECK(f.engine->info().read_only);
    CHECK_FALSE(f.engine->info().write_protected);
}

TEST_CASE("provisioning: READ CAPACITY(16), VPD B0 and B2 as the device reports them")
{
    SUBCASE("a thick disk")
    {
        EngineFixture f;
        const Provisioning &p = f.engine->info().provisioning;
        CHECK_FALSE(p.lbpme);
        CHECK_FALSE(p.lbprz);
        CHECK_FALSE(p.lbpu);
        CHECK_FALSE(p.lbpws);
        CHECK(p.max_unmap_blocks == 0); // B0 reports none without UNMAP
        CHECK(p.max_write_same_blocks == 0xffff);
    }
    SUBCASE("a thin disk")
    {
        TargetConfig config;
        config.lbpme = true;
        config.lbprz = true;
        config.lbpu = true;
        config.lbpws = true;
        config.unmap_granularity = 8;
        config.unmap_granularity_alignment = 3;
        config.max_unmap_lba_count = 4096;
        config.max_unmap_descriptors = 7;
        config.max_write_same_blocks = 1000;
        EngineFixture f(config);
        const Provisioning &p = f.engine->info().provisioning;
        CHECK(p.lbpme);
        CHECK(p.lbprz);
        CHECK(p.lbpu);
        CHECK(p.lbpws);
        CHECK_FALSE(p.lbpws10);
        CHECK(p.unmap_granularity == 8);
        CHECK(p.unmap_granularity_alignment == 3);
        CHECK(p.max_unmap_blocks == 4096);
        CHECK(p.max_unmap_descriptors == 7);
        CHECK(p.max_write_same_blocks == 1000);
    }
    SUBCASE("thin, unmapped blocks not reading zero")
    {
        TargetConfig config;
        config.lbpme = true;
        config.lbpws = true;
        EngineFixture f(config);
        const Provisioning &p = f.engine->info().provisioning;
        CHECK(p.lbpme);
        CHECK_FALSE(p.lbprz);
        CHECK(p.lbpws);
    }
}

TEST_CASE("refusals")
{
    std::string message;
    SUBCASE("not a disk: ENOTBLK, named")
    {
        TargetConfig config;
        config.device_type = 0x05; // CD/DVD
        CHECK(refused(config, test_options(), message) == -ENOTBLK);
        CHECK(contains(message, "/dev/sg0 is not a disk"));
    }
    SUBCASE("max_io below the block size: EINVAL")
    {
        TargetConfig config;
        config.block_size = 4096;
        DiskOptions options = test_options();
        options.max_io = 2048;
        CHECK(refused(config, options, message) == -EINVAL);
        CHECK(contains(message, "max_io=2048"));
        CHECK(contains(message, "4096"));
    }
    SUBCASE("a block size that is not a power of two")
    {
        TargetConfig config;
        config.block_size = 520;
        CHECK(refused(config, test_options(), message) == -EPROTO);
        CHECK(contains(message, "520"));
    }
    SUBCASE("the first channel does not open")
    {
        auto target = std::make_shared<MemoryTarget>();
        target->fail_opens(-EACCES, 1);
        std::unique_ptr<Engine> engine;
        CHECK(open_engine(target, test_options(), engine, message) == -EACCES);
        CHECK(engine == nullptr);
        CHECK(contains(message, "/dev/sg0"));
        CHECK(target->log().empty());
    }
    SUBCASE("a later channel does not open: its error, nothing left open")
    {
        auto target = std::make_shared<MemoryTarget>();
        std::unique_ptr<Engine> engine;
        const int rc = Engine::open(std::make_unique<FailingTransport>(target, 3), test_options(),
                                    engine, message);
        CHECK(rc == -EMFILE);
        CHECK(contains(message, "too many"));
        CHECK(engine == nullptr);
        CHECK(target->open_channels() == 0);
    }
    SUBCASE("the device gone")
    {
        auto target = std::make_shared<MemoryTarget>();
        target->disappear();
        std::unique_ptr<Engine> engine;
        CHECK(open_engine(target, test_options(), engine, message) == -ENXIO);
    }
}

TEST_CASE("a disk of type RBC (0x0e) is a disk")
{
    TargetConfig config;
    config.device_type = 0x0e;
    EngineFixture f(config);
    CHECK(f.engine->info().device_type == 0x0e);
}

TEST_CASE("a power-on unit attention at the first command is absorbed")
{
    TargetConfig config;
    config.power_on_attention = true;
    auto target = std::make_shared<MemoryTarget>(config);
    std::unique_ptr<Engine> engine;
    std::string message;
    REQUIRE(open_engine(target, test_options(), engine, message) == 0);
    // TEST UNIT READY met it and was sent again; nothing else failed.
    CHECK(target->count(opcode::test_unit_ready) == 2);
    const std::vector<CommandRecord> log = target->log();
    REQUIRE(log.size() >= 2);
    CHECK(log[0].opcode == opcode::test_unit_ready);
    CHECK(log[0].faulted);
    for (std::size_t i = 1; i < log.size(); ++i)
        CHECK_FALSE(log[i].faulted);
    const DeviceStatsSnapshot stats = engine->stats();
    CHECK(stats.retries == 1);
    CHECK(stats.errors[static_cast<int>(ErrorCategory::unit_attention)] == 1);
    // And IO afterwards meets no attention.
    Bytes data(512);
    CHECK(engine->pread(data.data(), data.size(), 0).ok());
}

TEST_CASE("channels: queue_depth of them, mapped ones for mmap, the read-ahead's own")
{
    struct Case {
        IoMode mode;
        bool readahead;
        unsigned expected;
    };
    for (const Case c : {Case{IoMode::indirect, false, 3}, Case{IoMode::direct, false, 3},
                         Case{IoMode::indirect, true, 6}, Case{IoMode::mmap, false, 6},
                         Case{IoMode::automatic, false, 6}, Case{IoMode::automatic, true, 9}}) {
        CAPTURE(static_cast<int>(c.mode));
        CAPTURE(c.readahead);
        DiskOptions options = test_options(c.mode, 3);
        options.readahead = c.readahead;
        EngineFixture f({}, options);
        CHECK(f.target->open_channels() == c.expected);
        f.engine.reset();
        CHECK(f.target->open_channels() == 0);
    }
}

// The probe's commands, in order: TEST UNIT READY, INQUIRY, READ CAPACITY(16), VPD 0x00,
// 0x83, 0xB0, 0xB2, MODE SENSE. A rule firing on the n-th command the target receives
// fails that one (the log says which it was).
namespace
{

Fault nth_command_fails(unsigned n)
{
    Fault fault;
    fault.kind = FaultKind::check_condition;
    fault.every = n;
    fault.sense_key = 0x05; // ILLEGAL REQUEST, invalid command operation code
    fault.asc = 0x20;
    return fault;
}

const CommandRecord &faulted(const std::vector<CommandRecord> &log)
{
    const auto it = std::find_if(log.begin(), log.end(),
                                 [](const CommandRecord &record) { return record.faulted; });
    REQUIRE(it != log.end());
    return *it;
}

} // namespace

TEST_CASE("probe fallbacks: what the device does not answer is done without")
{
    auto target = std::make_shared<MemoryTarget>();
    std::unique_ptr<Engine> engine;
    std::string message;
    SUBCASE("READ CAPACITY(16) refused: READ CAPACITY(10)")
    {
        target->inject(nth_command_fails(3));
        REQUIRE(open_engine(target, test_options(), engine, message) == 0);
        CHECK(faulted(target->log()).opcode == opcode::service_action_in_16);
        CHECK(target->count(opcode::read_capacity_10) == 1);
        CHECK(engine->info().capacity_bytes == target->bytes());
        CHECK(engine->info().logical_block_size == 512);
    }
    SUBCASE("both READ CAPACITY commands refused: the open fails")
    {
        target->inject(nth_command_fails(3));
        target->inject(nth_command_fails(4));
        CHECK(open_engine(target, test_options(), engine, message) == -EOPNOTSUPP);
        CHECK(target->count(opcode::read_capacity_10) == 1);
        INFO(message);
        CHECK(contains(message, "Read capacity(10)"));
        CHECK(engine == nullptr);
    }
    SUBCASE("VPD 0x83 refused: the id from the serial number (VPD 0x80)")
    {
        target->inject(nth_command_fails(5));
        REQUIRE(open_engine(target, test_options(), engine, message) == 0);
        CHECK(faulted(target->log()).opcode == opcode::inquiry);
        CHECK(engine->info().stable_id == "serial-MT0001");
    }
    SUBCASE("VPD B0 refused: no limits from it")
    {
        TargetConfig config;
        config.max_transfer_blocks = 8;
        config.max_write_same_blocks = 77;
        target = std::make_shared<MemoryTarget>(config);
        target->inject(nth_command_fails(6));
        REQUIRE(open_engine(target, test_options(), engine, message) == 0);
        CHECK(engine->info().max_transfer_bytes == 64 * 1024); // the reserve
        CHECK(engine->info().provisioning.max_write_same_blocks == 0);
    }
    SUBCASE("TEST UNIT READY failing: the open fails with its error")
    {
        Fault fault;
        fault.kind = FaultKind::check_condition;
        fault.sense_key = 0x02; // NOT READY, medium not present
        fault.asc = 0x3a;
        fault.times = Fault::always;
        target->inject(fault);
        CHECK(open_engine(target, test_options(), engine, message) != 0);
        INFO(message);
        CHECK(contains(message, "Test Unit Ready"));
        CHECK(target->count(opcode::inquiry) == 0);
    }
    SUBCASE("INQUIRY failing: the open fails")
    {
        target->inject(nth_command_fails(2));
        CHECK(open_engine(target, test_options(), engine, message) == -EOPNOTSUPP);
        INFO(message);
        CHECK(contains(message, "Inquiry"));
    }
}

TEST_CASE("a channel of the mmap pool or of the read-ahead not opening fails the open")
{
    for (const bool readahead : {false, true}) {
        CAPTURE(readahead);
        auto target = std::make_shared<MemoryTarget>();
        DiskOptions options = test_options(readahead ? IoMode::indirect : IoMode::mmap, 2);
        options.readahead = readahead;
        std::unique_ptr<Engine> engine;
        std::string message;
        // Two plain channels open; the third (mapped, or the read-ahead's) does not.
        CHECK(Engine::open(std::make_unique<FailingTransport>(target, 3), options, engine,
                           message) == -EMFILE);
        CHECK(engine == nullptr);
        CHECK(target->open_channels() == 0);
    }
}
