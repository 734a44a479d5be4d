// Fuzzes the rendezvous wire decoder: the bytes a connection to MASTER_PORT can send. They
// are fed to the frame decoder in pieces whose sizes come from the input, as a socket would
// deliver them; every hello is decoded as the service decodes it.
//
// Beyond "no crash": a frame is never larger than the limit it was read under, and a hello
// that decodes encodes back to the same bytes.
#include <cstdint>
#include <cstdlib>

#include "common/error.h"
#include "transport/bootstrap/wire.h"

using namespace conveyor;
using namespace conveyor::transport;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t piece = 1 + data[0] % 64;
  ++data;
  --size;
  wire::FrameDecoder decoder;
  bool admitted = false;  // the service allows more than a hello only after one
  try {
    for (size_t at = 0; at < size;) {
      const size_t n = std::min(piece, size - at);
      decoder.feed(data + at, n);
      at += n;
      const uint64_t limit = admitted ? wire::kMaxPayload : wire::kMaxHelloPayload;
      while (auto frame = decoder.next(limit)) {
        if (frame->payload.size() > limit) std::abort();
        if (frame->type != wire::MsgType::kHello) continue;
        try {
          const wire::Hello hello = wire::decode_hello(frame->payload);
          if (hello.version == wire::kVersion && wire::encode_hello(hello) != frame->payload)
            std::abort();
          admitted = true;
        } catch (const Error&) {
        }
      }
    }
  } catch (const Error&) {
    // A bad magic, type or length: the service closes the connection.
  }
  return 0;
}
