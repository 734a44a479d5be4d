// How much memory this process can still get: for refusing, before allocating, a run that
// cannot fit.
#pragma once

#include <optional>
#include <string>

namespace conveyor {

// MemAvailable from /proc/meminfo, lowered to what the cgroup (v2 memory.max minus
// memory.current) leaves when that is less. nullopt when neither can be read.
std::optional<double> available_memory_bytes();

// "1.5 GiB", "730 MiB", "12 KiB", "512 B"
std::string human_bytes_binary(double bytes);

}  // namespace conveyor
