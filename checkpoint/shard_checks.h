// INTERNAL to checkpoint/ (include only from checkpoint/*.cc): the checks of one shard
// against its manifest entry that verify() and CheckpointReader share. They take HDF5
// handles, which no public header of checkpoint/ exposes.
#pragma once

#ifndef CONVEYOR_CHECKPOINT_INTERNAL
#error "checkpoint/shard_checks.h is internal to checkpoint/; include checkpoint/checkpoint.h"
#endif

#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "checkpoint/manifest.h"

namespace conveyor::checkpoint {

// Checks a shard file on disk against its manifest entry before opening it: present, same
// size, an HDF5 file. Throws Error(kUsage) naming the shard.
void check_shard_file(const std::filesystem::path& shard_path, const ShardInfo& shard);
// Checks the shard's root attributes (step, stage: the shard's number) against the manifest.
void check_shard_header(hid_t file, const std::filesystem::path& shard_path,
                        const ShardInfo& shard);
// Throws Error(kUsage) naming shard and dataset unless data_sum equals both the dataset's
// attribute and the manifest's checksum.
void check_dataset_sum(const std::filesystem::path& shard_path, const std::string& dataset,
                       uint64_t data_sum, std::optional<uint64_t> attr_sum, uint64_t manifest_sum);

}  // namespace conveyor::checkpoint
