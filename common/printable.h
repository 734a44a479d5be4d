// Making text from another process safe to log.
//
// A peer's host name, an abort reason or a rejected hello is untrusted: a newline would
// forge a log line, terminal escape codes would rewrite the screen, and a 60 kB name would
// flood the log. Every such string goes through printable() before it is stored or logged.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace conveyor {

// How much of a peer's host name is kept (Linux allows 64 bytes; DNS names 253).
inline constexpr size_t kMaxPeerHostBytes = 255;
// How much of a peer's free-text message (an abort reason, a rejection) is kept.
inline constexpr size_t kMaxPeerTextBytes = 4096;

// `text` with every byte outside printable ASCII (0x20..0x7e) written as \xNN, cut after
// `max_bytes` input bytes with "... (N more bytes)" appended. The result is printable ASCII
// on one line, and printable(printable(s)) == printable(s) for any s short enough to be
// kept whole (so a string escaped by the service is not escaped twice by a rank).
std::string printable(std::string_view text, size_t max_bytes = kMaxPeerTextBytes);

// `text` as valid UTF-8, for a JSON string (nlohmann's dump() throws on anything else): text
// that is valid UTF-8 comes back unchanged; otherwise every byte outside a valid UTF-8
// sequence is written as \xNN. A file name with a Latin-1 byte thus keeps one stable text in
// manifests and fingerprints.
std::string utf8_text(std::string_view text);

// `text` made safe for a terminal, for the messages and log lines conveyor prints (which hold
// file names, and a file name may hold anything): control bytes other than newline and tab,
// DEL, the C1 controls and bytes outside valid UTF-8 are written as \xNN; everything else,
// non-ASCII text included, is kept.
std::string terminal_text(std::string_view text);

}  // namespace conveyor
