#include "tools/corpus.h"

#include <array>
#include <string>
#include <vector>

namespace bitsweep::tools {
namespace {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL) {}
  uint64_t Next() {  // splitmix64
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  size_t Below(size_t n) { return static_cast<size_t>(Next() % n); }
  template <typename T, size_t N>
  const T& Pick(const std::array<T, N>& a) {
    return a[Below(N)];
  }
  bool Chance(int percent) { return Below(100) < static_cast<size_t>(percent); }

 private:
  uint64_t state_;
};

const std::array<const char*, 12> kNames = {"Alice", "Bruno", "Clara", "Dmitri", "Elena", "Farid",
                                            "Greta", "Hiro",  "Ines",  "Jonas",  "Kira",  "Leo"};
const std::array<const char*, 12> kPronoun = {"she", "he", "she", "he", "she", "he",
                                              "she", "he", "she", "he", "she", "he"};
const std::array<const char*, 8> kPlaces = {"harbor",  "market", "library", "garden",
                                            "station", "castle", "village", "forest"};
const std::array<const char*, 8> kTitles = {"The Harbor",  "The Market",  "The Library",
                                            "The Garden",  "The Station", "The Castle",
                                            "The Village", "The Forest"};
const std::array<const char*, 10> kObjects = {"apple",  "book",  "lamp",   "coin", "basket",
                                              "letter", "stone", "candle", "map",  "bottle"};
const std::array<const char*, 10> kObjectsPl = {"apples",  "books",  "lamps",   "coins", "baskets",
                                                "letters", "stones", "candles", "maps",  "bottles"};
const std::array<const char*, 8> kColors = {"red",   "blue",  "green", "yellow",
                                            "white", "black", "small", "old"};
const std::array<const char*, 8> kAnimals = {"cat", "dog",  "horse", "fox",
                                             "owl", "goat", "crow",  "bear"};
const std::array<const char*, 8> kAnimalsPl = {"cats", "dogs",  "horses", "foxes",
                                               "owls", "goats", "crows",  "bears"};
// Third person singular and plural forms, for subject-verb agreement.
const std::array<const char*, 8> kAnimalVerbs = {"sleeps", "runs", "waits", "sings",
                                                 "hides",  "eats", "plays", "watches"};
const std::array<const char*, 8> kAnimalVerbsPl = {"sleep", "run", "wait", "sing",
                                                   "hide",  "eat", "play", "watch"};
const std::array<const char*, 6> kWeather = {"sunny", "cold", "windy", "rainy", "quiet", "warm"};
const std::array<const char*, 13> kNumbers = {"zero", "one",    "two",   "three", "four",
                                              "five", "six",    "seven", "eight", "nine",
                                              "ten",  "eleven", "twelve"};
const std::array<const char*, 7> kDays = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                          "Friday", "Saturday", "Sunday"};

std::string Cap(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

// "an apple", "a book".
std::string Article(const std::string& noun) {
  const bool vowel = !noun.empty() && std::string("aeiou").find(noun[0]) != std::string::npos;
  return (vowel ? "an " : "a ") + noun;
}

// "one coin" or "three coins".
std::string Count(size_t n, size_t object) {
  return std::string(kNumbers[n]) + " " + (n == 1 ? kObjects[object] : kObjectsPl[object]);
}

// Someone other than person `p`.
const char* Other(Rng& r, size_t p) {
  return kNames[(p + 1 + r.Below(kNames.size() - 1)) % kNames.size()];
}

// One sentence about the paragraph's topic person `p` at place `place`.
std::string Sentence(Rng& r, size_t p, size_t place, size_t day) {
  const std::string name = kNames[p], he = kPronoun[p], where = kPlaces[place];
  switch (r.Below(12)) {
    case 0: {
      const size_t n = 2 + r.Below(9);
      return name + " has " + kNumbers[n] + " " + r.Pick(kColors) + " " + kObjectsPl[r.Below(10)] +
             ".";
    }
    case 1: {
      const size_t a = r.Below(7), b = r.Below(6);
      return Cap(kNumbers[a]) + std::string(" plus ") + kNumbers[b] + " is " + kNumbers[a + b] +
             ".";
    }
    case 2: {
      const size_t a = 3 + r.Below(10), b = r.Below(a + 1);
      return Cap(kNumbers[a]) + std::string(" minus ") + kNumbers[b] + " is " + kNumbers[a - b] +
             ".";
    }
    case 3:
      return "The " + std::string(r.Pick(kColors)) + " " + r.Pick(kAnimals) + " " +
             r.Pick(kAnimalVerbs) + " near the " + where + ".";
    case 4:
      return "On " + std::string(kDays[day]) + ", " + name + " went to the " + where +
             " and bought " + Article(kObjects[r.Below(10)]) + ".";
    case 5:
      return Cap(he) + " said that the " + where + " was " + r.Pick(kWeather) + " today.";
    case 6: {
      const size_t o = r.Below(10);
      return Cap(he) + " gave the " + kObjects[o] + " to " + Other(r, p) + ", who kept the " +
             kObjects[o] + ".";
    }
    case 7:
      return "The day after " + std::string(kDays[day]) + " is " + kDays[(day + 1) % 7] + ".";
    case 8:
      return "In the " + where + ", " + name + " and " + Other(r, p) + " counted " +
             Count(1 + r.Below(12), r.Below(10)) + ".";
    case 9: {  // plural subject, plural verb
      const size_t n = 2 + r.Below(5), a = r.Below(8), v = r.Below(8);
      return Cap(kNumbers[n]) + std::string(" ") + r.Pick(kColors) + " " + kAnimalsPl[a] + " " +
             kAnimalVerbsPl[v] + " in the " + where + ".";
    }
    case 10: {  // a list: "a map, two coins and an apple"
      const size_t items = 2 + r.Below(3);
      std::string list;
      for (size_t i = 0; i < items; ++i) {
        if (i) list += i + 1 == items ? " and " : ", ";
        const size_t o = r.Below(10);
        list += r.Chance(50) ? Article(kObjects[o]) : Count(2 + r.Below(6), o);
      }
      return name + " packed " + list + " for the trip to the " + where + ".";
    }
    default: {  // products up to twelve
      const size_t a = 1 + r.Below(4), b = 1 + r.Below(12 / a);
      return Cap(kNumbers[a]) + std::string(" times ") + kNumbers[b] + " is " + kNumbers[a * b] +
             ".";
    }
  }
}

// A paragraph about one person at the section's place.
std::string Paragraph(Rng& r, size_t place) {
  const size_t p = r.Below(kNames.size()), day = r.Below(7);
  // The person is named first, so that later pronouns agree with a name many tokens back.
  std::string text = std::string(kNames[p]) + " lived near the " + kPlaces[place] + ".";
  const size_t n = 3 + r.Below(5);
  for (size_t i = 0; i < n; ++i) text += " " + Sentence(r, p, place, day);
  return text;
}

}  // namespace

std::string GenerateCorpus(const CorpusOptions& o) {
  Rng r(o.seed);
  std::string out;
  while (out.size() < o.bytes) {
    const size_t place = r.Below(kPlaces.size());
    std::vector<std::string> paras;
    const size_t n = 2 + r.Below(4);
    for (size_t i = 0; i < n; ++i) paras.push_back(Paragraph(r, place));
    if (o.wikitext_layout) {
      out += " \n = " + std::string(kTitles[place]) + " = \n \n";
      for (const auto& p : paras) out += " " + p + " \n";
    } else {
      for (const auto& p : paras) out += p + "\n";
      out += "\n";
    }
  }
  return out;
}

std::vector<std::string> GenerateDocuments(uint64_t seed, size_t count, size_t doc_bytes) {
  Rng r(seed);
  std::vector<std::string> docs;
  for (size_t d = 0; d < count; ++d) {
    std::string doc;
    const size_t place = r.Below(kPlaces.size());
    while (doc.size() < doc_bytes) {
      if (!doc.empty()) doc += "\n";
      doc += Paragraph(r, place);
    }
    docs.push_back(doc);
  }
  return docs;
}

}  // namespace bitsweep::tools
