// SPDX-License-Identifier: MIT
#pragma once

// The demo's main workload, shaped like an API server's request: parse a JSON
// document (a batch of orders) into a pmr DOM of objects, arrays and strings,
// index it in pmr maps, build a response DOM and serialize it into a
// pmr::string. Every byte of that lives on the memory resource passed in,
// and almost all of it dies when the request ends, as in a real server.
// Also: a deterministic generator of such documents, so the demo needs no
// input files, and a reader for JSON Lines files (--input).

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory_resource>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace strata::examples::json {

// ------------------------------------------------------------------- DOM

struct member;
struct value;
using string = std::pmr::string;
using array = std::pmr::vector<value>;
using object = std::pmr::vector<member>;  // members in document order, as most DOMs keep them

/// What a value is made from: not a value (that is a move), and not a
/// pointer, or `array a{resource}` would pick the initializer-list
/// constructor, each pointer turning into a bool value.
template <class T>
concept value_source =
    !std::is_same_v<std::remove_cvref_t<T>, value> && !std::is_pointer_v<std::remove_cvref_t<T>>;

/// One JSON value. Strings and containers allocate on the resource they were
/// built with; moving a value keeps that resource. Not copyable: a copy
/// would land on the default resource (pmr containers do not propagate
/// their allocator on copy construction); clone() copies onto a resource.
/// The special members are defined below member, where object is complete
/// (clang instantiates them at the end of the class otherwise).
struct value {
  using variant = std::variant<std::nullptr_t, bool, double, string, array, object>;
  variant data;

  value() noexcept;
  /// Makes a value holding one of variant's alternatives (see value_source).
  template <value_source T>
  // NOLINTNEXTLINE(bugprone-forwarding-reference-overload): value_source excludes value
  value(T&& alternative) : data(std::forward<T>(alternative)) {}
  value(value&& other) noexcept;
  value& operator=(value&& other) noexcept;
  value(const value&) = delete;
  value& operator=(const value&) = delete;
  ~value();

  [[nodiscard]] const object* as_object() const noexcept { return std::get_if<object>(&data); }
  [[nodiscard]] const array* as_array() const noexcept { return std::get_if<array>(&data); }
  [[nodiscard]] const string* as_string() const noexcept { return std::get_if<string>(&data); }
  [[nodiscard]] double as_number(double otherwise = 0) const noexcept {
    const double* d = std::get_if<double>(&data);
    return d != nullptr ? *d : otherwise;
  }
  /// Returns the member named key of an object, or nullptr.
  [[nodiscard]] const value* find(std::string_view key) const noexcept;
};

struct member {
  string key;
  value val;
};

inline value::value() noexcept : data(nullptr) {}
inline value::value(value&& other) noexcept = default;
inline value& value::operator=(value&& other) noexcept = default;
inline value::~value() = default;

inline const value* value::find(std::string_view key) const noexcept {
  if (const object* o = as_object()) {
    for (const member& m : *o)
      if (m.key == key) return &m.val;
  }
  return nullptr;
}

/// Returns a deep copy of v on r. (A plain copy would put its strings and
/// containers on the default resource: pmr containers do not propagate
/// their allocator on copy construction.)
inline value clone(const value& v, std::pmr::memory_resource* r) {
  if (const string* s = v.as_string()) return {string{*s, r}};
  if (const array* a = v.as_array()) {
    array copy{r};
    copy.reserve(a->size());
    for (const value& e : *a) copy.push_back(clone(e, r));
    return {std::move(copy)};
  }
  if (const object* o = v.as_object()) {
    object copy{r};
    copy.reserve(o->size());
    for (const member& m : *o) copy.push_back({string{m.key, r}, clone(m.val, r)});
    return {std::move(copy)};
  }
  if (const bool* b = std::get_if<bool>(&v.data)) return {*b};
  if (const double* d = std::get_if<double>(&v.data)) return {*d};
  return {};
}

// ---------------------------------------------------------------- parsing

/// A malformed document: what is wrong and at which byte.
class parse_error : public std::runtime_error {
 public:
  parse_error(const std::string& what, std::size_t offset) : std::runtime_error(what), offset_(offset) {}
  [[nodiscard]] std::size_t offset() const noexcept { return offset_; }

 private:
  std::size_t offset_;
};

/// A recursive-descent parser of RFC 8259 JSON (depth at most 64).
class parser {
 public:
  parser(std::string_view text, std::pmr::memory_resource* r) : text_(text), r_(r) {}

  /// Returns the document's value. Throws: parse_error.
  value parse() {
    value v = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the document");
    return v;
  }

 private:
  [[noreturn]] void fail(const char* what) const { throw parse_error(what, pos_); }

  void skip_space() noexcept {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' || text_[pos_] == '\t'))
      ++pos_;
  }
  char peek() {
    skip_space();
    if (pos_ == text_.size()) fail("unexpected end of the document");
    return text_[pos_];
  }
  void expect(char c) {
    if (peek() != c) {
      static constexpr const char* messages[] = {"expected ':'", "expected ',' or the end of the list"};
      fail(c == ':' ? messages[0] : messages[1]);
    }
    ++pos_;
  }
  bool literal(std::string_view word) noexcept {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  value parse_value(int depth) {
    if (depth > 64) fail("nested deeper than 64 levels");
    switch (peek()) {
      case '{':
        return {parse_object(depth)};
      case '[':
        return {parse_array(depth)};
      case '"':
        return {parse_string()};
      case 't':
        if (literal("true")) return {true};
        break;
      case 'f':
        if (literal("false")) return {false};
        break;
      case 'n':
        if (literal("null")) return {nullptr};
        break;
      default:
        return {parse_number()};
    }
    fail("not a JSON value");
  }

  object parse_object(int depth) {
    object o{r_};
    ++pos_;  // '{'
    if (peek() == '}') {
      ++pos_;
      return o;
    }
    for (;;) {
      if (peek() != '"') fail("expected a member name");
      string key = parse_string();
      expect(':');
      o.push_back({std::move(key), parse_value(depth + 1)});
      if (peek() == '}') {
        ++pos_;
        return o;
      }
      expect(',');
    }
  }

  array parse_array(int depth) {
    array a{r_};
    ++pos_;  // '['
    if (peek() == ']') {
      ++pos_;
      return a;
    }
    for (;;) {
      a.push_back(parse_value(depth + 1));
      if (peek() == ']') {
        ++pos_;
        return a;
      }
      expect(',');
    }
  }

  static int hex(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  string parse_string() {
    string s{r_};
    ++pos_;  // '"'
    for (;;) {
      // Copy the run up to the next quote or escape at once.
      const std::size_t end = text_.find_first_of("\"\\", pos_);
      if (end == std::string_view::npos) fail("unterminated string");
      s.append(text_.substr(pos_, end - pos_));
      pos_ = end + 1;
      if (text_[end] == '"') return s;
      if (pos_ == text_.size()) fail("unterminated string");
      switch (const char c = text_[pos_++]) {
        case '"':
        case '\\':
        case '/':
          s += c;
          break;
        case 'b':
          s += '\b';
          break;
        case 'f':
          s += '\f';
          break;
        case 'n':
          s += '\n';
          break;
        case 'r':
          s += '\r';
          break;
        case 't':
          s += '\t';
          break;
        case 'u': {
          unsigned code = 0;
          for (int i = 0; i < 4; ++i) {
            const int h = pos_ < text_.size() ? hex(text_[pos_]) : -1;
            if (h < 0) fail("bad \\u escape");
            code = code * 16 + static_cast<unsigned>(h);
            ++pos_;
          }
          // UTF-8 for the basic plane; surrogates are kept as written (the
          // workload never compares them).
          if (code < 0x80) {
            s += static_cast<char>(code);
          } else if (code < 0x800) {
            s += static_cast<char>(0xc0 | (code >> 6));
            s += static_cast<char>(0x80 | (code & 0x3f));
          } else {
            s += static_cast<char>(0xe0 | (code >> 12));
            s += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
            s += static_cast<char>(0x80 | (code & 0x3f));
          }
          break;
        }
        default:
          fail("bad escape in a string");
      }
    }
  }

  double parse_number() {
    double d = 0;
    const char* begin = text_.data() + pos_;
    const auto [end, error] = std::from_chars(begin, text_.data() + text_.size(), d);
    if (error != std::errc{} || end == begin) fail("not a JSON value");
    pos_ += static_cast<std::size_t>(end - begin);
    return d;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::pmr::memory_resource* r_;  // (held, not owned)
};

// ------------------------------------------------------------ serializing

inline void append_escaped(string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

inline void append_number(string& out, double d) {
  char buf[32];
  const auto [end, error] = std::to_chars(buf, buf + sizeof buf, d);
  out.append(buf, error == std::errc{} ? end : buf);
}

/// Appends v as compact JSON.
inline void serialize(const value& v, string& out) {
  struct visitor {
    string& out;
    void operator()(std::nullptr_t) const { out += "null"; }
    void operator()(bool b) const { out += b ? "true" : "false"; }
    void operator()(double d) const { append_number(out, d); }
    void operator()(const string& s) const { append_escaped(out, s); }
    void operator()(const array& a) const {
      out += '[';
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (i != 0) out += ',';
        serialize(a[i], out);
      }
      out += ']';
    }
    void operator()(const object& o) const {
      out += '{';
      for (std::size_t i = 0; i < o.size(); ++i) {
        if (i != 0) out += ',';
        append_escaped(out, o[i].key);
        out += ':';
        serialize(o[i].val, out);
      }
      out += '}';
    }
  };
  std::visit(visitor{out}, v.data);
}

// ------------------------------------------------------------ the request

/// FNV-1a, so every backend's responses can be compared by one number.
inline std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

/// Serves one request on r: parses document, indexes its orders by customer
/// (pmr::map) and by tag (pmr::unordered_map), builds a response DOM (batch
/// totals, the top customers, tag counts, one summary per order with its
/// title words upper-cased) and serializes it. Returns a checksum of the
/// response text. Throws: parse_error for a malformed document.
inline std::uint64_t process(std::string_view document, std::pmr::memory_resource* r) {
  const value doc = parser(document, r).parse();

  struct customer_totals {
    double spent = 0;
    std::uint32_t orders = 0;
  };
  std::pmr::map<string, customer_totals, std::less<>> by_customer{r};
  std::pmr::unordered_map<string, std::uint32_t> by_tag{r};
  array summaries{r};
  double revenue = 0;
  std::uint32_t cancelled = 0;

  const value* orders = doc.find("orders");
  if (const array* list = orders != nullptr ? orders->as_array() : nullptr) {
    summaries.reserve(list->size());
    for (const value& order : *list) {
      const value* status = order.find("status");
      if (status != nullptr && status->as_string() != nullptr && *status->as_string() == "cancelled") {
        ++cancelled;
        continue;
      }
      double total = 0;
      std::uint32_t units = 0;
      string titles{r};
      const value* items = order.find("items");
      if (const array* item_list = items != nullptr ? items->as_array() : nullptr) {
        for (const value& item : *item_list) {
          const value* qty = item.find("qty");
          const value* price = item.find("price");
          const double q = qty != nullptr ? qty->as_number() : 0;
          total += q * (price != nullptr ? price->as_number() : 0);
          units += static_cast<std::uint32_t>(q);
          if (const value* tags = item.find("tags"); tags != nullptr && tags->as_array() != nullptr) {
            for (const value& tag : *tags->as_array())
              if (const string* t = tag.as_string()) ++by_tag[*t];
          }
          if (const value* title = item.find("title"); title != nullptr && title->as_string() != nullptr) {
            if (!titles.empty()) titles += " / ";
            for (const char c : *title->as_string())
              titles += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
          }
        }
      }
      revenue += total;
      const value* customer = order.find("customer");
      const value* name = customer != nullptr ? customer->find("name") : nullptr;
      string who{name != nullptr && name->as_string() != nullptr ? std::string_view{*name->as_string()}
                                                                 : std::string_view{"(unknown)"},
                 r};
      auto& c = by_customer[who];
      c.spent += total;
      ++c.orders;

      object summary{r};
      const value* id = order.find("id");
      summary.push_back({string{"id", r}, id != nullptr ? clone(*id, r) : value{}});
      summary.push_back({string{"customer", r}, value{std::move(who)}});
      summary.push_back({string{"units", r}, value{static_cast<double>(units)}});
      summary.push_back(
          {string{"total", r}, value{static_cast<double>(static_cast<long long>(total * 100)) / 100}});
      summary.push_back({string{"titles", r}, value{std::move(titles)}});
      summaries.push_back(value{std::move(summary)});
    }
  }

  // The five customers who spent most (ties by name), and the tags by count.
  std::pmr::vector<std::pair<std::string_view, customer_totals>> ranked{r};
  for (const auto& [who, totals] : by_customer) ranked.emplace_back(who, totals);
  const std::size_t top = std::min<std::size_t>(5, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(top), ranked.end(),
                    [](const auto& a, const auto& b) {
                      return a.second.spent != b.second.spent ? a.second.spent > b.second.spent
                                                              : a.first < b.first;
                    });
  array top_customers{r};
  for (std::size_t i = 0; i < top; ++i) {
    object o{r};
    o.push_back({string{"name", r}, value{string{ranked[i].first, r}}});
    o.push_back({string{"orders", r}, value{static_cast<double>(ranked[i].second.orders)}});
    top_customers.push_back(value{std::move(o)});
  }
  std::pmr::vector<std::pair<std::string_view, std::uint32_t>> tags{r};
  for (const auto& [tag, n] : by_tag) tags.emplace_back(tag, n);
  std::sort(tags.begin(), tags.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  object tag_counts{r};
  for (const auto& [tag, n] : tags) tag_counts.push_back({string{tag, r}, value{static_cast<double>(n)}});

  object response{r};
  const value* batch = doc.find("batch");
  response.push_back({string{"batch", r}, batch != nullptr ? clone(*batch, r) : value{}});
  response.push_back({string{"orders", r}, value{static_cast<double>(summaries.size())}});
  response.push_back({string{"cancelled", r}, value{static_cast<double>(cancelled)}});
  response.push_back(
      {string{"revenue", r}, value{static_cast<double>(static_cast<long long>(revenue * 100)) / 100}});
  response.push_back({string{"top_customers", r}, value{std::move(top_customers)}});
  response.push_back({string{"tags", r}, value{std::move(tag_counts)}});
  response.push_back({string{"summaries", r}, value{std::move(summaries)}});

  string out{r};
  serialize(value{std::move(response)}, out);
  return fnv1a(out);
}

// ------------------------------------------------------------------ input

/// Deterministic order batches of about 1 to 60 KiB (most near 8 KiB, a few
/// large ones, as real payloads are skewed), one document each.
inline std::vector<std::string> generated_documents(std::size_t count) {
  static constexpr const char* syllables[] = {"ka",  "lo",  "mi",  "ne",  "ru", "sa",  "to",
                                              "vi",  "en",  "or",  "an",  "is", "tel", "mar",
                                              "dun", "pre", "qua", "ble", "ing"};
  static constexpr const char* tag_names[] = {"home",    "garden",  "gift",   "sale", "new",     "kids",
                                              "outdoor", "kitchen", "office", "eco",  "premium", "bulk"};
  static constexpr const char* statuses[] = {"paid", "paid", "paid", "shipped", "pending", "cancelled"};
  std::mt19937 rng(20261204);
  const auto word = [&](unsigned parts) {
    std::string w;
    for (unsigned n = 0; n < parts; ++n) w += syllables[rng() % std::size(syllables)];
    return w;
  };
  std::vector<std::string> customers;
  for (int i = 0; i < 400; ++i) {
    std::string name = word(1 + rng() % 3);
    name[0] = static_cast<char>(name[0] - 32);
    name += ' ';
    name += word(2 + rng() % 2);
    customers.push_back(std::move(name));
  }
  std::vector<std::string> documents;
  for (std::size_t d = 0; d < count; ++d) {
    const double u = std::generate_canonical<double, 32>(rng);
    const unsigned orders = 2 + static_cast<unsigned>(u * u * u * 118);  // skewed: mostly small batches
    std::string text = "{\"batch\":" + std::to_string(d) + ",\"region\":\"" + word(2) +
                       "\",\"created\":\"2026-12-04T10:00:" + std::to_string(10 + d % 50) +
                       "Z\",\"orders\":[";
    for (unsigned o = 0; o < orders; ++o) {
      if (o != 0) text += ',';
      const std::string& who = customers[rng() % customers.size()];
      text += "{\"id\":\"ord-" + std::to_string(d) + "-" + std::to_string(o) +
              "\",\"customer\":{\"id\":" + std::to_string(rng() % 100000) + ",\"name\":\"" + who +
              "\",\"email\":\"" + word(2) + "." + word(2) + "@example.com\",\"tier\":\"" +
              (rng() % 4 == 0 ? "gold" : "standard") + "\"},\"status\":\"" +
              statuses[rng() % std::size(statuses)] + "\",\"items\":[";
      for (unsigned i = 0, items = 1 + rng() % 6; i < items; ++i) {
        if (i != 0) text += ',';
        text += "{\"sku\":\"SKU-" + std::to_string(10000 + rng() % 90000) + "\",\"title\":\"" + word(2) +
                " " + word(3) + " " + word(1 + rng() % 3) + "\",\"qty\":" + std::to_string(1 + rng() % 5) +
                ",\"price\":" + std::to_string(1 + rng() % 200) + "." + std::to_string(10 + rng() % 90) +
                ",\"tags\":[";
        for (unsigned t = 0, n = rng() % 4; t < n; ++t) {
          if (t != 0) text += ',';
          text += std::string{"\""} + tag_names[rng() % std::size(tag_names)] + "\"";
        }
        text += "]}";
      }
      text += "],\"note\":\"" + (rng() % 3 == 0 ? word(3) + " " + word(2) + " \\\"" + word(2) + "\\\"" : "") +
              "\"}";
    }
    text += "]}";
    documents.push_back(std::move(text));
  }
  return documents;
}

}  // namespace strata::examples::json
