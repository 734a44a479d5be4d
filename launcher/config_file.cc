// Parsed with toml++, not with CLI11's own config support (App::set_config): in Debian 12's
// CLI11 2.1.2, set_config on a subcommand (`conveyor train --config F`) applies nothing; its
// reader is not TOML ("layers = = 3" passes as a value, micro_batch_size does not match
// --micro-batch-size); and its config items carry no file, line or column, so even with a
// toml++-backed CLI::Config an unknown key reads "INI was not able to parse train.layerz" and
// a type error "Could not convert: --layers = four". Here each error names the file, and the
// line and column of the key or value at fault.
#include "launcher/config_file.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "common/error.h"
#include "common/file_io.h"

namespace conveyor::cli {

namespace {

// "config file run.toml, line 3, column 1"
std::string place(const std::string& path, const toml::source_region& where) {
  return fmt::format("config file {}, line {}, column {}", path, where.begin.line,
                     where.begin.column);
}

// A TOML float as written in a file: 2.0 stays "2.0", not "2".
std::string float_text(double v) {
  return v == std::floor(v) && std::fabs(v) < 1e15 ? fmt::format("{:.1f}", v)
                                                   : fmt::format("{}", v);
}

// The text of a setting's value, as a flag would give it. Numbers are checked here, where
// TOML's types are still known: a whole-number flag takes a TOML integer, never a float
// (2.5, or 2.0 that reads as 2), and a float is finite (TOML has nan and inf). Strings with
// a NUL byte are refused: the C paths they become would end at it.
std::string value_text(const toml::node& node, const std::string& key, const std::string& path,
                       const CLI::Option& option) {
  // The type first: toml++ converts a float to an integer on request, with no range check.
  if (node.is_boolean()) return *node.value<bool>() ? "true" : "false";
  if (node.is_integer()) return std::to_string(*node.value<int64_t>());
  if (node.is_floating_point()) {
    const double v = *node.value<double>();
    const std::string type = option.get_type_name();
    if (type.rfind("INT", 0) == 0 || type.rfind("UINT", 0) == 0)
      throw Error(ErrorKind::kUsage,
                  fmt::format("{}: '{}' must be a whole number (got {})",
                              place(path, node.source()), key, float_text(v)),
                  fmt::format("write it without a fraction or exponent, e.g. {} = 4", key));
    if (!std::isfinite(v))
      throw Error(ErrorKind::kUsage, fmt::format("{}: '{}' must be a finite number (got {})",
                                                 place(path, node.source()), key, v));
    return fmt::format("{}", v);
  }
  if (auto v = node.value<std::string>()) {
    if (v->find('\0') != std::string::npos)
      throw Error(ErrorKind::kUsage,
                  fmt::format("{}: '{}' holds a NUL byte (\\u0000), which no path or setting "
                              "may contain",
                              place(path, node.source()), key),
                  "remove the \\u0000 escape from the string");
    return *v;
  }
  throw Error(
      ErrorKind::kUsage,
      fmt::format("{}: '{}' must be a string, number or boolean", place(path, node.source()), key),
      "write it as key = value, e.g. layers = 4");
}

}  // namespace

void apply_config_file(CLI::App& command, const std::string& path) {
  // Read as every input is (common/file_io.h): a FIFO is refused, never blocked on.
  const std::string text = read_input_file(path, "--config file");
  toml::table table;
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw Error(ErrorKind::kUsage,
                fmt::format("config file {} is not valid TOML at line {}, column {}: {}", path,
                            where.line, where.column, e.description()),
                "fix the file or pass the settings as flags");
  }
  for (const auto& [k, node] : table) {
    std::string key(k.str());
    std::string flag = key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    CLI::Option* option = nullptr;
    try {
      option = command.get_option("--" + flag);
    } catch (const CLI::OptionNotFound&) {
      option = nullptr;
    }
    // These act on the command line, not as settings.
    if (option == nullptr || flag == "config" || flag == "help" || flag == "version" ||
        flag == "print-config") {
      throw Error(ErrorKind::kUsage,
                  fmt::format("{}: unknown setting '{}'", place(path, k.source()), key),
                  fmt::format("the settings are the flags of 'conveyor {}' without the leading "
                              "dashes; see --help",
                              command.get_name()));
    }
    if (option->count() > 0) continue;  // the command line wins
    const std::string text = value_text(node, key, path, *option);
    try {
      if (option->get_expected_min() == 0) {  // a flag: true/false
        if (text == "true") {
          option->add_result("true");
          option->run_callback();
        } else if (text != "false") {
          throw Error(ErrorKind::kUsage, fmt::format("{}: '{}' is a switch; use true or false",
                                                     place(path, node.source()), key));
        }
      } else {
        option->add_result(text);
        option->run_callback();
      }
    } catch (const CLI::ParseError& e) {
      throw Error(ErrorKind::kUsage, fmt::format("{}: bad value '{}' for '{}': {}",
                                                 place(path, node.source()), text, key, e.what()));
    }
  }
}

}  // namespace conveyor::cli
