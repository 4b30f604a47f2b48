// Page-aligned buffers (core/aligned_buffer.hpp): the alignment sg direct IO needs, the
// zeroed form zeroing writes, and moves that leave no buffer owned twice.
#include "aligned_buffer.hpp"

#include <algorithm>
#include <cstdint>
#include <doctest/doctest.h>
#include <new>
#include <unistd.h>
#include <utility>

using namespace sgfs;

namespace
{

bool page_aligned(const void *pointer)
{
    return reinterpret_cast<std::uintptr_t>(pointer) %
               static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE)) ==
           0;
}

} // namespace

TEST_CASE("a buffer is page aligned, of the size asked, and writable to its end")
{
    for (const std::size_t size : {std::size_t{1}, std::size_t{512}, std::size_t{4096},
                                   std::size_t{4097}, std::size_t{1} << 20}) {
        CAPTURE(size);
        AlignedBuffer buffer(size);
        REQUIRE(buffer.data() != nullptr);
        CHECK(buffer.size() == size);
        CHECK(page_aligned(buffer.data()));
        buffer.data()[0] = 1;
        buffer.data()[size - 1] = 2;
        CHECK(buffer.data()[size - 1] == 2);
    }
}

TEST_CASE("an empty buffer owns nothing")
{
    const AlignedBuffer none;
    CHECK(none.data() == nullptr);
    CHECK(none.size() == 0);
    const AlignedBuffer zero(0);
    CHECK(zero.data() == nullptr);
    CHECK(zero.size() == 0);
    const AlignedBuffer zeroed = AlignedBuffer::zeroed(0);
    CHECK(zeroed.data() == nullptr);
}

TEST_CASE("zeroed: every byte zero")
{
    const AlignedBuffer zeroed = AlignedBuffer::zeroed(3 * 4096 + 17);
    REQUIRE(zeroed.size() == 3 * 4096 + 17);
    CHECK(page_aligned(zeroed.data()));
    CHECK(std::all_of(zeroed.data(), zeroed.data() + zeroed.size(),
                      [](std::uint8_t byte) { return byte == 0; }));
}

TEST_CASE("moves hand the memory over: the source is empty or holds the other's")
{
    AlignedBuffer a(4096);
    std::uint8_t *const memory = a.data();
    memory[10] = 0x5a;
    AlignedBuffer b(std::move(a));
    CHECK(b.data() == memory);
    CHECK(b.size() == 4096);
    CHECK(a.data() == nullptr); // NOLINT(bugprone-use-after-move): what a move leaves
    CHECK(a.size() == 0);       // NOLINT(bugprone-use-after-move)

    // Assignment swaps: the old memory goes with the moved-from object, freed once.
    AlignedBuffer c(512);
    std::uint8_t *const other = c.data();
    c = std::move(b);
    CHECK(c.data() == memory);
    CHECK(c.size() == 4096);
    CHECK(c.data()[10] == 0x5a);
    CHECK(b.data() == other); // NOLINT(bugprone-use-after-move)
    CHECK(b.size() == 512);   // NOLINT(bugprone-use-after-move)
}

#if !defined(__SANITIZE_ADDRESS__)
// ASan reports an impossible allocation instead of failing it (allocator_may_return_null=0).
TEST_CASE("a size no allocator can give throws bad_alloc")
{
    CHECK_THROWS_AS(AlignedBuffer(std::size_t{1} << 62), std::bad_alloc);
}
#endif
