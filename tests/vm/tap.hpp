// Minimal TAP output for the programs that run inside the VM.
#pragma once

#include <cstdio>
#include <string>

namespace tap {

inline int failures = 0;
inline int count = 0;

inline bool check(bool ok, const std::string &name, const std::string &detail = {})
{
    ++count;
    std::printf("%sok %d - %s\n", ok ? "" : "not ", count, name.c_str());
    if (!ok) {
        ++failures;
        if (!detail.empty())
            std::printf("#   %s\n", detail.c_str());
    }
    std::fflush(stdout);
    return ok;
}

inline void note(const std::string &text)
{
    std::printf("# %s\n", text.c_str());
    std::fflush(stdout);
}

inline int finish()
{
    std::printf("1..%d\n# %d failed\n", count, failures);
    return failures == 0 ? 0 : 1;
}

} // namespace tap
