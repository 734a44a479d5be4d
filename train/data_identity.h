// The training data's identity: a cheap fingerprint recorded by every checkpoint commit, so
// that a resumed run can tell whether it continues on the same data.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace conveyor::pipeline {

// Where the data's identity is recorded: manifest.json's "config" object (which also holds
// the run's --data, --micro-batch-size and --microbatches, TrainConfig::to_json()).
inline constexpr const char* kDataIdentityKey = "data_identity";

// A cheap fingerprint of the training data at `path` (the files data::Dataset::open reads):
// {"files", "bytes", "xxh3"}, the hash over every file's name (not its folder), size, and
// first and last 64 KiB. The same data moved or copied elsewhere keeps its identity.
// Throws Error(kUsage) for a path Dataset::open refuses, kRuntime when a file cannot be read.
nlohmann::json data_identity(const std::string& path);

// Whether two identities name the same data (false when either is malformed).
bool same_identity(const nlohmann::json& a, const nlohmann::json& b);

// "3 file(s), 20480 bytes, xxh3 0123456789abcdef", for messages.
std::string identity_text(const nlohmann::json& id);

}  // namespace conveyor::pipeline
