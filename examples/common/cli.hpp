// examples/common/cli.hpp — strict command-line parsing for the example programs: every flag known,
// every value checked (type, range, presence); any mistake is a UsageError (exit status 2) that says
// which flag, what was expected and what was found.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace programs {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses "--name value" and "--name=value" flags and positional words. Flags are declared up front as
// taking a value or not; "--" ends the flags.
class Arguments {
 public:
  Arguments(const std::vector<std::string>& words, const std::set<std::string>& value_flags,
            const std::set<std::string>& switch_flags) {
    bool flags_done = false;
    for (std::size_t i = 0; i < words.size(); ++i) {
      const std::string& word = words[i];
      if (flags_done || word.size() < 2 || word.compare(0, 2, "--") != 0 || word == "--") {
        if (word == "--" && !flags_done) {
          flags_done = true;
          continue;
        }
        positional_.push_back(word);
        continue;
      }
      const auto equals = word.find('=');
      const std::string name = word.substr(0, equals);
      if (switch_flags.count(name)) {
        if (equals != std::string::npos) throw UsageError(name + " takes no value, found '" + word + "'");
        set(name, "");
      } else if (value_flags.count(name)) {
        if (equals != std::string::npos) {
          set(name, word.substr(equals + 1));
        } else {
          if (i + 1 >= words.size()) throw UsageError(name + " needs a value");
          set(name, words[++i]);
        }
      } else {
        throw UsageError("unknown option '" + name + "'");
      }
    }
  }

  bool has(const std::string& flag) const { return values_.count(flag) != 0; }
  const std::vector<std::string>& positional() const { return positional_; }

  std::optional<std::string> text(const std::string& flag) const {
    const auto found = values_.find(flag);
    if (found == values_.end()) return std::nullopt;
    if (found->second.empty()) throw UsageError(flag + " needs a non-empty value");
    return found->second;
  }

  // An integer in [min, max]; the whole word must be a number.
  std::optional<std::int64_t> integer(const std::string& flag, std::int64_t min, std::int64_t max) const {
    const auto value = text(flag);
    if (!value) return std::nullopt;
    return parse_integer(*value, flag, min, max);
  }

  // A finite number in [min, max] (max inclusive), or > min when min_exclusive.
  std::optional<double> number(const std::string& flag, double min, double max, bool min_exclusive) const {
    const auto value = text(flag);
    if (!value) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    const double parsed = std::strtod(value->c_str(), &end);
    if (end == value->c_str() || *end != '\0' || errno == ERANGE || !std::isfinite(parsed))
      throw UsageError(flag + " expects a number, found '" + *value + "'");
    if (parsed < min || (min_exclusive && parsed == min) || parsed > max)
      throw UsageError(flag + " must be " + (min_exclusive ? "> " : ">= ") + format(min) + " and <= " + format(max) +
                       ", found " + *value);
    return parsed;
  }

  static std::int64_t parse_integer(const std::string& value, const std::string& what, std::int64_t min,
                                    std::int64_t max) {
    char* end = nullptr;
    errno = 0;
    const long long parsed = std::strtoll(value.c_str(), &end, 10);
    if (value.empty() || end == value.c_str() || *end != '\0')
      throw UsageError(what + " expects an integer, found '" + value + "'");
    if (errno == ERANGE || parsed < min || parsed > max)  // an integer, but too large for any use here
      throw UsageError(what + " must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], found " + value);
    return parsed;
  }

 private:
  void set(const std::string& name, const std::string& value) {
    if (!values_.emplace(name, value).second) throw UsageError(name + " given twice");
  }
  static std::string format(double x) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%g", x);
    return buffer;
  }

  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace programs
