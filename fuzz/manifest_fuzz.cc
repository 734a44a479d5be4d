// Fuzzes the checkpoint manifest parser: manifest.json as a damaged or hostile checkpoint
// could hold it, through checkpoint::manifest_from_json (which also indexes the parameters).
//
// Bad input must be refused with conveyor::Error naming the file, the contract every reader
// of a checkpoint relies on; a JSON library exception escaping it is a finding.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "checkpoint/manifest.h"
#include "common/error.h"

using namespace conveyor;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;  // read_manifest refuses text that is not JSON
  try {
    const checkpoint::Manifest m = checkpoint::manifest_from_json(j, "manifest.json");
    (void)checkpoint::to_json(m);
  } catch (const Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "manifest fuzz: an exception outside the contract: %s\n", e.what());
    std::abort();
  }
  return 0;
}
