#include "readahead_window.hpp"

#include <algorithm>
#include <bit>

namespace sgfs
{

std::uint64_t first_window_blocks(std::uint64_t request_blocks, std::uint64_t max_blocks)
{
    // Four requests ahead, rounded to a power of two so that windows stay aligned as they
    // double; a request as large as the largest command gets one command per window.
    const std::uint64_t rounded = std::bit_ceil(std::max<std::uint64_t>(request_blocks, 1));
    return std::clamp<std::uint64_t>(rounded * 4, 1, std::max<std::uint64_t>(max_blocks, 1));
}

std::uint64_t next_window_blocks(std::uint64_t previous_blocks, std::uint64_t max_blocks)
{
    return std::clamp<std::uint64_t>(previous_blocks * 2, 1,
                                     std::max<std::uint64_t>(max_blocks, 1));
}

bool cover_request(std::span<const BlockRange> windows, const BlockRange &request,
                   std::vector<WindowPiece> &pieces)
{
    pieces.clear();
    std::uint64_t at = request.lba;
    while (at < request.end()) {
        std::size_t found = windows.size();
        for (std::size_t i = 0; i < windows.size(); ++i)
            if (windows[i].blocks != 0 && windows[i].contains(at)) {
                found = i;
                break;
            }
        if (found == windows.size())
            return false;
        const BlockRange &window = windows[found];
        const std::uint64_t until = std::min(window.end(), request.end());
        pieces.push_back({found, at - window.lba, until - at});
        at = until;
    }
    return true;
}

} // namespace sgfs
