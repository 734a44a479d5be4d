// The checkpoint library in one include: sharded HDF5 save (writer.h), commit, retention and
// clean-up (commit.h), manifest (manifest.h), verification and discovery (verify.h),
// reading by parameter name across any stage layout (reader.h), and the lock that gives one
// job the directory (dir_lock.h).
// File format and commit protocol: docs/CHECKPOINT_FORMAT.md.
#pragma once

#include "checkpoint/commit.h"
#include "checkpoint/dir_lock.h"
#include "checkpoint/layout.h"
#include "checkpoint/manifest.h"
#include "checkpoint/reader.h"
#include "checkpoint/verify.h"
#include "checkpoint/writer.h"
