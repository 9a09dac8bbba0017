// SPDX-License-Identifier: MIT
#pragma once

// The word-count request shared by strata-demo and the benchmarks: tokenize
// a document into std::pmr::vector<std::pmr::string>, count the words in a
// std::pmr::unordered_map, rank the top k; plus a deterministic text
// generator so both run without input files.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory_resource>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace strata::examples {

inline constexpr std::size_t top_k = 10;

// ------------------------------------------------------------------ input

// Deterministic text: a vocabulary of syllable words drawn with a Zipf-like
// skew, as real text is, in documents of about 2,000 words.
inline std::vector<std::string> generated_documents(std::size_t count) {
  static constexpr const char* syllables[] = {"ka",  "lo",  "mi",  "ne",  "ru",  "sa",  "to",
                                              "vi",  "en",  "or",  "an",  "is",  "tel", "mar",
                                              "dun", "pre", "qua", "ble", "ing", "st"};
  std::mt19937 rng(20261201);
  std::vector<std::string> vocabulary;
  for (int i = 0; i < 5000; ++i) {
    std::string word;
    for (unsigned n = 1 + rng() % 4; n != 0; --n) word += syllables[rng() % std::size(syllables)];
    vocabulary.push_back(word);
  }
  std::vector<std::string> documents;
  for (std::size_t d = 0; d < count; ++d) {
    std::string text;
    const unsigned words = 1500 + rng() % 1000;
    for (unsigned w = 0; w < words; ++w) {
      // Skewed pick: small indices (common words) far more often than large ones.
      const double u = std::generate_canonical<double, 32>(rng);
      text += vocabulary[static_cast<std::size_t>(u * u * u * (vocabulary.size() - 1))];
      text += (w % 17 == 16) ? ".\n" : " ";
    }
    documents.push_back(std::move(text));
  }
  return documents;
}

// ------------------------------------------------------------------- work

// Processes one request on r and returns a checksum of its ranking.
inline std::uint64_t process(std::string_view text, std::pmr::memory_resource* r) {
  std::pmr::vector<std::pmr::string> words{r};
  std::pmr::string word{r};
  for (char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      word += static_cast<char>(c | 0x20);
    } else if (!word.empty()) {
      words.push_back(word);
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(word);

  std::pmr::unordered_map<std::pmr::string, std::uint32_t> counts{r};
  for (const std::pmr::string& w : words) ++counts[w];

  std::pmr::vector<std::pair<std::string_view, std::uint32_t>> ranked{r};
  ranked.reserve(counts.size());
  for (const auto& [w, n] : counts) ranked.emplace_back(w, n);
  const std::size_t k = std::min(top_k, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(k), ranked.end(),
                    [](const auto& a, const auto& b) {
                      return a.second != b.second ? a.second > b.second : a.first < b.first;
                    });
  std::uint64_t sum = words.size();
  for (std::size_t i = 0; i < k; ++i)
    sum = sum * 1000003 + std::hash<std::string_view>{}(ranked[i].first) + ranked[i].second;
  return sum;
}

}  // namespace strata::examples
