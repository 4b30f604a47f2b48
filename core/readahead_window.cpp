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

std::size_t StreamTable::match(const BlockRange &request, ReaderId reader, std::size_t window_owner,
                               bool &sequential)
{
    std::size_t found = window_owner < streams_.size() && streams_[window_owner].reader == reader
                            ? window_owner
                            : streams_.size();
    for (std::size_t i = 0; found == streams_.size() && i < streams_.size(); ++i)
        if (streams_[i].reader == reader && streams_[i].next_lba == request.lba)
            found = i;
    sequential = found != streams_.size();
    if (!sequential) {
        found =
            static_cast<std::size_t>(std::min_element(streams_.begin(), streams_.end(),
                                                      [](const ReadStream &a, const ReadStream &b) {
                                                          return a.last_used < b.last_used;
                                                      }) -
                                     streams_.begin());
        streams_[found] = ReadStream{.reader = reader};
    }
    streams_[found].next_lba = request.end();
    streams_[found].last_used = ++clock_;
    streams_[found].sequential = sequential;
    return found;
}

void StreamTable::forget(ReaderId reader)
{
    if (reader == no_reader)
        return;
    for (ReadStream &stream : streams_)
        if (stream.reader == reader)
            stream = ReadStream{}; // last_used 0: taken over before any other
}

} // namespace sgfs
