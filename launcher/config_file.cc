#include "launcher/config_file.h"

#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"

namespace conveyor::cli {

namespace {

std::string value_text(const toml::node& node, const std::string& key, const std::string& path) {
  if (auto v = node.value<bool>(); node.is_boolean()) return *v ? "true" : "false";
  if (auto v = node.value<int64_t>(); node.is_integer()) return std::to_string(*v);
  if (node.is_floating_point()) return fmt::format("{}", *node.value<double>());
  if (auto v = node.value<std::string>()) return *v;
  throw Error(ErrorKind::kUsage,
              fmt::format("config file {}: '{}' must be a string, number or boolean", path, key),
              "write it as key = value, e.g. layers = 4");
}

}  // namespace

void apply_config_file(CLI::App& command, const std::string& path) {
  CONVEYOR_REQUIRE(std::filesystem::is_regular_file(path),
                   "--config '{}' does not exist or is not a file", path);
  toml::table table;
  try {
    table = toml::parse_file(path);
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
    if (option == nullptr || flag == "config") {
      throw Error(ErrorKind::kUsage, fmt::format("config file {}: unknown setting '{}'", path, key),
                  fmt::format("the settings are the flags of 'conveyor {}' without the leading "
                              "dashes; see --help",
                              command.get_name()));
    }
    if (option->count() > 0) continue;  // the command line wins
    const std::string text = value_text(node, key, path);
    try {
      if (option->get_expected_min() == 0) {  // a flag: true/false
        if (text == "true") {
          option->add_result("true");
          option->run_callback();
        } else if (text != "false") {
          throw Error(
              ErrorKind::kUsage,
              fmt::format("config file {}: '{}' is a switch; use true or false", path, key));
        }
      } else {
        option->add_result(text);
        option->run_callback();
      }
    } catch (const CLI::ParseError& e) {
      throw Error(ErrorKind::kUsage, fmt::format("config file {}: bad value '{}' for '{}': {}",
                                                 path, text, key, e.what()));
    }
  }
}

}  // namespace conveyor::cli
