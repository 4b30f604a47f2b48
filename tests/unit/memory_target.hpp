// An in-memory SCSI logical unit behind core's Transport seam (core/channel.hpp), for unit
// tests of everything above the sg driver: the command loop, sg_ll_*, and the engine.
//
// MemoryTarget is the device: a block store with a mapped/unmapped state per block, the
// commands sgfs sends (TEST UNIT READY, INQUIRY with VPD 0x00/0x80/0x83/0xB0/0xB2, READ
// CAPACITY(10)/(16), MODE SENSE(10), READ/WRITE(10)/(16), SYNCHRONIZE CACHE(10)/(16), UNMAP,
// WRITE SAME(16), GET LBA STATUS) answered with real sense bytes, and fault rules a test
// adds. MemoryTransport opens channels to it, as the sg driver opens fds: each channel has
// its own reserve buffer (mapped for mmap IO when asked) and carries one command at a time.
// A completion's CommandOutcome comes from core's classify(), as in production.
//
// Like the sg driver: a command is received at submit() (logged, counted in flight, its
// fault chosen) and carried out at reap(), so the caller's buffer must stay valid until
// then; direct IO is done only when the "driver" allows it (quietly indirect otherwise);
// indirect IO that fits a mapped channel's reserve buffer goes through it, overwriting what
// the mapping held (the sg driver bounces indirect IO through the reserve); mmap IO needs a mapped
// reserve buffer big enough (else submit() fails, -EINVAL or -ENOMEM); a read-only channel refuses
// commands that change the medium (-EPERM). A request that breaks the Channel contract (a direction
// or length that does not match the CDB) fails submit() with -EINVAL and is noted in violations().
//
// Files: this header (the interface), memory_target.cpp (state, fault rules, channels,
// transport), memory_target_commands.cpp (the SCSI commands), memory_target_scsi.hpp (what
// those two share).
//
// Thread-safe: any number of channels, used from any threads (each channel by one thread at
// a time, like an fd). One mutex guards the target; commands are carried out one at a time.
#pragma once

#include "channel.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace sgfs::test
{

class MemoryTarget;

// The LUs a copy manager reaches: targets made with one registry find each other by their
// NAA designator (as LIO's copy manager finds the LUs of one session) and share one lock, so
// that a copy between two of them is carried out as one command. Register by config.
class CopyRegistry
{
  public:
    CopyRegistry() = default;

  private:
    friend class MemoryTarget;
    std::shared_ptr<std::mutex> mutex_ = std::make_shared<std::mutex>();
    std::vector<MemoryTarget *> targets_; // guarded by *mutex_
};

// RECEIVE COPY RESULTS operating parameters (SPC-4 6.18.4); the defaults are LIO's.
struct CopyManagerConfig {
    bool snlid = true; // supports no list identifier
    std::uint16_t max_cscd_descriptors = 2;
    std::uint16_t max_segment_descriptors = 1;
    std::uint32_t max_descriptor_list_length = 1024;
    std::uint32_t max_segment_length = std::uint32_t{256} << 20; // bytes
    std::uint16_t total_concurrent_copies = 1;
    std::uint8_t max_concurrent_copies = 1;
    std::uint8_t data_segment_granularity_log2 = 9;
    std::vector<std::uint8_t> descriptor_codes = {0x02, 0xe4}; // block to block, identification
};

struct TargetConfig {
    std::uint32_t block_size = 512;
    std::uint64_t block_count = 2048;
    std::uint8_t device_type = 0x00; // SCSI peripheral device type: 0x00 disk
    std::string vendor = "SGFS";
    std::string product = "MEMORY TARGET";
    std::string revision = "0001";
    std::string serial = "MT0001";
    // The NAA designator of VPD 0x83 (8 bytes for NAA 5, 16 for NAA 6); empty for none, so
    // that the T10 vendor id designator (vendor + serial) is the only one.
    std::vector<std::uint8_t> naa = {0x60, 0x01, 0x40, 0x5a, 0x17, 0x7e, 0x57, 0x00,
                                     0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01};
    bool write_protected = false; // MODE SENSE WP; commands that write get 07/27/00
    // Logical block provisioning (READ CAPACITY(16), VPD B0 and B2).
    bool lbpme = false; // thin provisioned
    bool lbprz = false; // unmapped blocks read zero; else a non-zero pattern (but see below)
    // With LBPRZ off: false makes unmapped blocks read zero all the same, without saying so
    // (LIO fileio punches holes in its backing file, which read zero, and reports LBPRZ=0).
    bool unmapped_pattern_without_lbprz = true;
    bool lbpu = false;                   // UNMAP is supported (else it is an invalid opcode)
    bool lbpws = false;                  // WRITE SAME(16) with the UNMAP bit is supported
    std::uint32_t unmap_granularity = 1; // blocks: only whole granules are ever unmapped
    std::uint32_t unmap_granularity_alignment = 0;
    std::uint32_t max_unmap_lba_count = 0xffffffff; // per UNMAP
    std::uint32_t max_unmap_descriptors = 64;
    // UNMAP leaves every n-th whole granule of each descriptor mapped and as it was, and
    // returns GOOD (UNMAP is advisory: SBC lets a device ignore any of it); 0: none.
    std::uint32_t unmap_keeps_every = 0;
    // GET LBA STATUS reports runs in descriptors of at most this many blocks, several in a
    // row of one state (as a device that tracks chunks may); 0: each run in one descriptor.
    std::uint32_t lba_status_split = 0;
    std::uint64_t max_write_same_blocks = 0xffff; // WRITE SAME beyond it: 05/24/00
    std::uint32_t max_transfer_blocks = 0;        // VPD B0; 0 = not reported, no limit
    bool start_mapped = true;        // every block mapped (and zero) at the start, else unmapped
    bool power_on_attention = false; // the first command (not INQUIRY) gets 06/29/00
    // The "driver" below the channels.
    bool allow_dio = false;                           // direct IO is done, not quietly indirect
    std::size_t max_reserve = std::size_t{512} << 10; // reserve granted at most per channel
    long max_transfer_bytes = std::size_t{512} << 10; // BLKSECTGET; -errno to fail it
    // Third-party copy: INQUIRY 3PC, and with it EXTENDED COPY(LID1) (identification CSCD
    // descriptors, block-to-block segments) reaching the targets of `copy_registry` (none
    // but itself without one), and RECEIVE COPY RESULTS operating parameters. Without 3PC
    // both are invalid opcodes.
    bool three_pc = false;
    std::shared_ptr<CopyRegistry> copy_registry;
    CopyManagerConfig copy_manager;
};

// Which commands a fault rule applies to.
enum class Ops {
    any,
    read,
    write,
    data,
    sync,
    write_same,
    unmap,
    get_lba_status,
    extended_copy,
    receive_copy_results
};

enum class FaultKind {
    medium_error,       // 03/11/00, INFORMATION = first LBA of the command in the rule's range
    power_on_attention, // 06/29/00 (never to INQUIRY, as SPC says)
    capacity_changed,   // 06/2A/09 (never to INQUIRY)
    aborted_command,    // 0B/00/00
    busy,               // SCSI status BUSY, no sense
    becoming_ready,     // 02/04/01; with `times`, ready after that many
    timeout,            // the transport's timeout verdict, in `timeout_form`; nothing moved
    short_transfer,     // GOOD with `residual` bytes not moved (WRITE, and commands with data-in)
    data_protect,       // 07/27/00
    check_condition,    // `sense_key`/`asc`/`ascq` as given
    device_gone,        // the device disappears with this command (see disappear())
    copy_aborted,       // EXTENDED COPY: `copied_blocks` blocks of its segments copied, then
                        // 0A/0D/02 (copy target device not reachable), as LIO fails part-way
};

// How a timeout reaches the caller: the three forms classify() knows.
enum class TimeoutForm { host, driver, transport }; // DID_TIME_OUT, DRIVER_TIMEOUT, timed_out
// How a gone device shows: submit() or reap() fail with -ENODEV, or the host says
// DID_NO_CONNECT.
enum class GoneForm { submit_fails, reap_fails, no_connect };

struct Fault {
    static constexpr unsigned always = ~0U;
    static constexpr std::uint32_t everything = ~0U; // a residual of the whole length

    FaultKind kind = FaultKind::medium_error;
    Ops on = Ops::any;
    // Commands overlapping [lba, lba + blocks); blocks == 0 matches every command (those
    // without an LBA, such as TEST UNIT READY, only match such rules).
    std::uint64_t lba = 0;
    std::uint64_t blocks = 0;
    unsigned times = 1;         // fires this many times, or `always`
    unsigned every = 1;         // on every `every`-th matching command (1: each)
    std::uint32_t residual = 0; // short_transfer: bytes not moved (clamped to the length)
    TimeoutForm timeout_form = TimeoutForm::host;
    GoneForm gone_form = GoneForm::reap_fails;
    std::uint8_t sense_key = 0, asc = 0, ascq = 0; // check_condition
    std::uint64_t copied_blocks = 0;               // copy_aborted
};

// One command as the target received it.
struct CommandRecord {
    std::uint64_t order = 0; // 0, 1, 2, ... across channels
    unsigned channel = 0;    // the channel's id, 0, 1, 2, ... in opening order
    std::uint8_t opcode = 0;
    std::uint64_t lba = 0;    // READ, WRITE, SYNCHRONIZE CACHE, WRITE SAME, GET LBA STATUS
    std::uint32_t blocks = 0; // the same commands' block count (0 otherwise)
    TransferMode mode = TransferMode::indirect; // as requested
    std::size_t length = 0;                     // the request's data length
    bool faulted = false;                       // a fault rule fired for it
    unsigned in_flight = 0; // commands outstanding as it was received, itself included
    // UNMAP: its block descriptors (LBA, blocks) as received; lba and blocks above span them.
    std::vector<std::pair<std::uint64_t, std::uint32_t>> unmap_ranges;
};

class MemoryTarget
{
  public:
    explicit MemoryTarget(TargetConfig config = {});
    // Another target port of `unit`'s logical unit (a second iSCSI portal, the other SAS
    // expander): the same config (so the same VPD ids), store, map and lock, but its own
    // fault rules, gone state, channels, log and counts, so that one path can fail alone.
    // Make it before resizing either (each keeps its own block count).
    static std::shared_ptr<MemoryTarget> another_port(MemoryTarget &unit);
    ~MemoryTarget();
    MemoryTarget(const MemoryTarget &) = delete;
    MemoryTarget &operator=(const MemoryTarget &) = delete;

    const TargetConfig &config() const { return config_; }
    std::uint64_t bytes() const;

    // ---- faults ----
    // Adds a rule; rules are tried in the order added and the first that fires decides.
    // Returns its index for fired().
    std::size_t inject(const Fault &fault);
    unsigned fired(std::size_t rule) const;
    void clear_faults();
    // The next command other than INQUIRY gets this unit attention, once.
    void raise_unit_attention(std::uint8_t asc, std::uint8_t ascq);
    // New capacity (the store keeps what fits, new blocks are zero and mapped) and a
    // 06/2A/09 unit attention.
    void resize(std::uint64_t block_count);
    // Other logical blocks (a FORMAT UNIT with a new block length): the store's bytes stay
    // where they are, counted in `block_size` blocks, and a 06/2A/09 unit attention.
    void reformat(std::uint32_t block_size, std::uint64_t block_count);
    // The device goes away: channels open now are dead for good (their commands fail in
    // `form`), opening channels fails with -ENXIO. reappear() lets new channels open and
    // work, as a device that came back (with its data).
    void disappear(GoneForm form = GoneForm::reap_fails);
    void reappear();
    bool gone() const;
    // The next `count` channel opens fail with `error` (-errno), or all with Fault::always.
    void fail_opens(int error, unsigned count = Fault::always);
    // While held, reap() waits: commands stay in flight until release_completions(), so a
    // test can line up concurrent commands. wait_in_flight(n) waits until n are.
    void hold_completions();
    void release_completions();
    void wait_in_flight(unsigned count) const;
    // From now on reap() waits until `count` commands are in flight at once; once they are,
    // that gathering is over and commands complete as usual. For a test that wants to see
    // `count` concurrent commands from sgfs: were sgfs to send fewer at a time, the wait
    // would never end, so after `give_up` it ends anyway and gather_failed() says so.
    void gather_in_flight(unsigned count,
                          std::chrono::milliseconds give_up = std::chrono::seconds(60));
    bool gather_failed() const;

    // ---- observation ----
    std::vector<CommandRecord> log() const;
    void clear_log();
    std::uint64_t count(std::uint8_t opcode) const; // commands received with this opcode
    unsigned max_in_flight() const;                 // submitted, not yet reaped, at once
    unsigned in_flight() const;
    unsigned open_channels() const;
    std::vector<std::string> violations() const; // Channel contract breaches seen

    // ---- the store, directly (no command, no log) ----
    // Bytes as a READ would return them (unmapped blocks: zero or the pattern).
    std::vector<std::uint8_t> peek(std::uint64_t offset, std::size_t length) const;
    // Writes bytes and maps the blocks they touch, as a WRITE would.
    void poke(std::uint64_t offset, std::span<const std::uint8_t> data);
    bool equals(std::uint64_t offset, std::span<const std::uint8_t> data) const;
    bool mapped(std::uint64_t lba) const;
    std::uint64_t mapped_blocks() const;
    // What an unmapped block reads as when LBPRZ is off: never zero, different per LBA.
    static std::uint8_t unmapped_pattern(std::uint64_t lba);

  private:
    friend class MemoryChannel;
    friend class MemoryTransport;
    struct Completion;
    // What the ports of one logical unit share.
    struct Medium {
        std::vector<std::uint8_t> store;
        std::vector<bool> mapped;
    };
    MemoryTarget(TargetConfig config, std::shared_ptr<std::mutex> lock,
                 std::shared_ptr<Medium> medium);
    struct Received; // what submit() decided, carried to reap()

    // Called with mutex_ held.
    int open_channel_locked(unsigned &id, unsigned &generation, std::string &message);
    int receive_locked(unsigned channel, unsigned generation, bool read_only,
                       const SgRequest &request, std::span<std::uint8_t> area, Received &out);
    // reap()'s wait, mutex_ held in `lock`: for a gathering (gather_in_flight), then while
    // completions are held.
    void wait_to_complete(std::unique_lock<std::mutex> &lock);
    void execute_locked(const SgRequest &request, std::uint8_t *data, const Received &received,
                        Completion &done);
    // Carries out the command, moving at most `limit` data bytes (a short transfer).
    void run_locked(const SgRequest &request, std::uint8_t *data, std::size_t limit,
                    Completion &done);
    std::vector<std::uint8_t> vpd_page_locked(std::uint8_t page) const;
    std::vector<std::uint8_t> lba_status_locked(std::uint64_t lba, std::size_t allocation) const;
    void unmap_command_locked(const SgRequest &request, const std::uint8_t *data, Completion &done);
    void write_same_locked(const SgRequest &request, const std::uint8_t *data, Completion &done);
    // Unmaps the whole granules in the range, but every `keep_every`-th of them (0: none).
    void unmap_locked(std::uint64_t lba, std::uint64_t blocks, std::uint32_t keep_every = 0);
    void map_locked(std::uint64_t lba, std::uint64_t blocks);
    // EXTENDED COPY(LID1), copying at most `budget` blocks; RECEIVE COPY RESULTS.
    void extended_copy_locked(const SgRequest &request, const std::uint8_t *data,
                              std::uint64_t budget, Completion &done);
    void receive_copy_results_locked(const SgRequest &request, std::uint8_t *data,
                                     std::size_t limit, Completion &done);
    MemoryTarget *copy_target_locked(std::span<const std::uint8_t> designator);

    TargetConfig config_;
    // Its own lock, or the copy registry's (shared by the targets that copy between them).
    std::shared_ptr<std::mutex> lock_;
    std::mutex &mutex_;
    mutable std::condition_variable changed_;
    std::shared_ptr<Medium> medium_;
    std::vector<std::uint8_t> &store_; // medium_'s
    std::vector<bool> &mapped_;
    struct Rule {
        Fault fault;
        unsigned matched = 0;
        unsigned fired = 0;
    };
    std::vector<Rule> rules_;
    bool attention_pending_ = false;
    std::uint8_t attention_asc_ = 0, attention_ascq_ = 0;
    bool gone_ = false;
    GoneForm gone_form_ = GoneForm::reap_fails;
    unsigned generation_ = 0; // bumped by disappear(): older channels are dead
    int open_error_ = 0;
    unsigned open_failures_ = 0;
    bool held_ = false;
    unsigned gather_count_ = 0; // reap() waits until this many are in flight; 0: no gathering
    std::chrono::steady_clock::time_point gather_deadline_{};
    bool gather_failed_ = false;
    std::vector<CommandRecord> log_;
    std::uint64_t received_ = 0;
    std::vector<std::uint64_t> per_opcode_ = std::vector<std::uint64_t>(256, 0);
    unsigned in_flight_ = 0, max_in_flight_ = 0;
    unsigned next_channel_ = 0, open_channels_ = 0;
    std::vector<std::string> violations_;
};

// The target as a Transport: what Engine::open and the probe take. facts() are those given,
// with allow_dio from the target's config (what the "driver" does decides).
class MemoryTransport final : public Transport
{
  public:
    MemoryTransport(std::shared_ptr<MemoryTarget> target, NodeFacts facts);
    NodeFacts facts() const override;
    // Grants min(spec.reserve, the target's max_reserve), maps it when spec.map (-EINVAL when
    // nothing was granted). -ENXIO while the device is gone; see MemoryTarget::fail_opens.
    int open_channel(const ChannelSpec &spec, std::unique_ptr<Channel> &out,
                     std::string &message) override;
    // open_channel() for a test that expects it to work: throws std::runtime_error if not.
    std::unique_ptr<Channel> channel(const ChannelSpec &spec = {});
    const std::shared_ptr<MemoryTarget> &target() const { return target_; }

  private:
    std::shared_ptr<MemoryTarget> target_;
    NodeFacts facts_;
};

// NodeFacts of a made-up /dev/sgN node for `target`.
NodeFacts memory_node_facts(unsigned number = 0);

} // namespace sgfs::test
