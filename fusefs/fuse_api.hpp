// The one place that picks the libfuse API version, so every translation unit sees the same
// declarations (fuse_loop_cfg_* and fuse_session_loop_mt's config form need 3.12 or later).
#pragma once

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
