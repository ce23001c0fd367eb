#include "common/mixed_precision.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace bitsweep {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string EntryText(const QuantOverride& o) {
  std::string s;
  if (!o.layers.empty()) absl::StrAppend(&s, "L", o.layers, ":");
  if (!o.linear.empty()) absl::StrAppend(&s, o.linear, ":");
  if (o.wbits >= kKeepFpBits) return s + "fp";
  absl::StrAppend(&s, "w", o.wbits);
  if (o.group_size != -1) absl::StrAppend(&s, "g", o.group_size);
  return s;
}

// The linear types an override selects (all for "").
StatusOr<std::vector<std::string>> SelectedTypes(std::string_view linear) {
  if (linear.empty()) return LinearTypes();
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(AV(linear), ',')) {
    const absl::string_view name = absl::StripAsciiWhitespace(part);
    const std::string t = LinearTypeOf(std::string_view(name.data(), name.size()));
    const auto& known = LinearTypes();
    if (std::find(known.begin(), known.end(), t) == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown linear \"", part, "\" (one of ",
                                                     absl::StrJoin(known, ", "), ")"));
    }
    out.push_back(t);
  }
  return out;
}

}  // namespace

const std::vector<std::string>& LinearTypes() {
  static const std::vector<std::string> kTypes = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                  "gate_proj", "up_proj", "down_proj"};
  return kTypes;
}

std::string LinearTypeOf(std::string_view name) {
  const size_t dot = name.rfind('.');
  return std::string(dot == std::string_view::npos ? name : name.substr(dot + 1));
}

StatusOr<std::vector<int64_t>> ParseLayerRanges(std::string_view text) {
  std::set<int64_t> out;
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("\"", AV(text), "\": ", AV(why),
                                                   " (ranges such as \"0-3,7\")"));
  };
  if (absl::StripAsciiWhitespace(AV(text)).empty()) return bad("empty");
  for (absl::string_view part : absl::StrSplit(AV(text), ',')) {
    part = absl::StripAsciiWhitespace(part);
    std::vector<absl::string_view> ends = absl::StrSplit(part, '-');
    int64_t lo = 0, hi = 0;
    if (ends.size() > 2 || !absl::SimpleAtoi(ends[0], &lo) ||
        !absl::SimpleAtoi(ends.back(), &hi) || ends[0].empty() || ends.back().empty()) {
      return bad(absl::StrCat("\"", part, "\" is not a layer or a range"));
    }
    if (lo < 0 || hi < lo) return bad(absl::StrCat("\"", part, "\" is empty or negative"));
    if (hi > kMaxOverrideLayer) {
      return bad(absl::StrCat("layer ", hi, " is over ", kMaxOverrideLayer));
    }
    for (int64_t l = lo; l <= hi; ++l) out.insert(l);
  }
  return std::vector<int64_t>(out.begin(), out.end());
}

std::string FormatLayerRanges(const std::vector<int64_t>& layers) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < layers.size();) {
    size_t j = i;
    while (j + 1 < layers.size() && layers[j + 1] == layers[j] + 1) ++j;
    parts.push_back(i == j ? absl::StrCat(layers[i]) : absl::StrCat(layers[i], "-", layers[j]));
    i = j + 1;
  }
  return absl::StrJoin(parts, ",");
}

LinearPrecision ResolveLinearPrecision(const QuantConfig& q, int64_t layer,
                                       std::string_view linear_name) {
  LinearPrecision p{q.wbits, q.group_size};
  const std::string type = LinearTypeOf(linear_name);
  for (const QuantOverride& o : q.overrides) {
    if (!o.linear.empty()) {
      auto types = SelectedTypes(o.linear);
      if (!types.ok() || std::find(types->begin(), types->end(), type) == types->end()) continue;
    }
    if (!o.layers.empty()) {
      auto layers = ParseLayerRanges(o.layers);
      if (!layers.ok() || !std::binary_search(layers->begin(), layers->end(), layer)) continue;
    }
    if (o.wbits != 0) p.wbits = o.wbits;
    if (o.group_size != 0) p.group_size = o.group_size;
  }
  if (p.keep_fp()) p = LinearPrecision{kKeepFpBits, -1};
  return p;
}

Status CanonicalizeOverrides(const MethodInfo& row, QuantConfig* q,
                             const std::function<std::string(std::string_view)>& field,
                             int64_t num_layers) {
  if (q->overrides.empty()) return absl::OkStatus();
  auto invalid = [&](size_t i, const char* name, const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat(field(absl::StrCat("quant.overrides[", i, "].", name)), ": ", why));
  };
  // What an override may change comes from the method's catalog row (override_bits,
  // override_keep_fp, and the reason where one is not offered): a method that quantizes every
  // linear's input activations cannot keep a weight in FP (its inputs would still be
  // quantized), and a method with one fixed grid can only keep linears in FP.
  if (row.baseline) {
    return absl::InvalidArgumentError(absl::StrCat(field("quant.overrides"), ": ", row.name,
                                                   " quantizes nothing to override"));
  }
  const bool per_channel = *row.per_channel_option != '\0' &&
                           q->options.count(row.per_channel_option) &&
                           q->options.at(row.per_channel_option) == "true";
  // Every (layer, type) cell up to the highest layer named, plus the cells of the layers no
  // entry names ("rest"), resolved by applying the entries in order.
  struct Entry {
    std::vector<int64_t> layers;  // empty = every layer
    std::vector<std::string> types;
    QuantOverride o;
  };
  std::vector<Entry> entries;
  int64_t max_layer = -1;
  for (size_t i = 0; i < q->overrides.size(); ++i) {
    const QuantOverride& o = q->overrides[i];
    Entry e{{}, {}, o};
    if (!o.layers.empty()) {
      auto l = ParseLayerRanges(o.layers);
      if (!l.ok()) return invalid(i, "layers", std::string(l.status().message()));
      e.layers = *l;
      max_layer = std::max(max_layer, e.layers.back());
    }
    auto t = SelectedTypes(o.linear);
    if (!t.ok()) return invalid(i, "linear", std::string(t.status().message()));
    e.types = *t;
    if (o.wbits == 0 && o.group_size == 0) {
      return invalid(i, "wbits", "the entry sets neither wbits nor group_size");
    }
    if (o.wbits != 0) {
      if (o.wbits == kKeepFpBits) {
        if (!row.override_keep_fp) return invalid(i, "wbits", row.override_note);
      } else if (!row.override_bits && o.wbits != q->wbits) {
        return invalid(i, "wbits", row.override_note);
      } else if (o.wbits < row.min_wbits || o.wbits > row.max_wbits) {
        return invalid(i, "wbits",
                       absl::StrCat(row.name, " takes ", BitsRange(row.min_wbits, row.max_wbits),
                                    " weight bits or 16 (full precision), got ", o.wbits));
      }
    }
    if (o.group_size != 0) {
      if (!row.group_size_applies) {
        return invalid(i, "group_size",
                       absl::StrCat(row.name, " has no group size (it ", row.group_note, ")"));
      }
      if (o.group_size < -1) {
        return invalid(i, "group_size",
                       absl::StrCat("must be -1 (per channel) or positive, got ", o.group_size));
      }
    }
    entries.push_back(std::move(e));
  }
  const std::vector<std::string>& types = LinearTypes();
  const LinearPrecision base{q->wbits, q->group_size};
  auto resolve = [&](int64_t layer, const std::string& type) {  // layer -1: the rest
    LinearPrecision p = base;
    for (const Entry& e : entries) {
      if (std::find(e.types.begin(), e.types.end(), type) == e.types.end()) continue;
      if (!e.layers.empty() &&
          (layer < 0 || !std::binary_search(e.layers.begin(), e.layers.end(), layer))) {
        continue;
      }
      if (e.o.wbits != 0) p.wbits = e.o.wbits;
      if (e.o.group_size != 0) p.group_size = e.o.group_size;
    }
    if (per_channel) p.group_size = -1;
    if (p.keep_fp()) p = LinearPrecision{kKeepFpBits, -1};
    return p;
  };
  std::map<std::string, LinearPrecision> rest;
  for (const std::string& t : types) rest[t] = resolve(-1, t);
  if (num_layers > 0) {
    // With the model's depth known, a type's "rest" is its most common precision over the
    // model's layers (the no-depth value on a tie), so "L1-27:fp" and "fp L0:w2" agree.
    max_layer = num_layers - 1;
    for (const std::string& t : types) {
      std::map<std::pair<int, int>, int64_t> count;
      for (int64_t l = 0; l < num_layers; ++l) {
        const LinearPrecision p = resolve(l, t);
        ++count[{p.wbits, p.group_size}];
      }
      int64_t best = count[{rest[t].wbits, rest[t].group_size}];
      for (const auto& [value, n] : count) {
        if (n > best) {
          best = n;
          rest[t] = LinearPrecision{value.first, value.second};
        }
      }
    }
  }
  // The precision most linear types get outside the named layers (ties: the recipe's, then the
  // lowest) becomes the recipe when the method can take it, else (FP) one entry for all types;
  // the types that differ from it get one entry each.
  std::map<std::pair<int, int>, int> votes;
  for (const std::string& t : types) ++votes[{rest[t].wbits, rest[t].group_size}];
  LinearPrecision common = base;
  int most = votes.count({base.wbits, base.group_size}) ? votes[{base.wbits, base.group_size}] : 0;
  for (const auto& [value, n] : votes) {
    if (n > most) {
      most = n;
      common = LinearPrecision{value.first, value.second};
    }
  }
  LinearPrecision canonical_base = common.keep_fp() ? base : common;
  if (common.keep_fp()) {
    // Every linear's entry then sets its bits and group, so the recipe's own width matters to
    // none: the lowest precision some linear gets stands in for it (the same with or without the
    // model's depth, since both see the same set of precisions), so that "w3 fp L0:w2" and
    // "w4 fp L0:w2" are one recipe.
    std::set<std::pair<int, int>> used;
    for (const std::string& t : types) {
      if (!rest[t].keep_fp()) used.insert({rest[t].wbits, rest[t].group_size});
      for (int64_t l = 0; l <= max_layer; ++l) {
        const LinearPrecision p = resolve(l, t);
        if (!p.keep_fp()) used.insert({p.wbits, p.group_size});
      }
    }
    if (!used.empty()) canonical_base = LinearPrecision{used.begin()->first, used.begin()->second};
  }
  std::vector<QuantOverride> out;
  if (common != canonical_base) out.push_back({"", "", common.wbits, common.group_size});
  for (const std::string& t : types) {
    if (rest[t] != common) out.push_back({"", t, rest[t].wbits, rest[t].group_size});
  }
  // Each named layer: either one entry for the whole layer at its most common precision plus
  // an entry for each linear off it, or an entry for each linear off its type's rest, whichever
  // is shorter (per-linear on a tie). Whole-layer entries come first; within each kind no two
  // entries overlap, so their order is free and they are sorted. Entries of equal precision
  // and type merge their layers into one range list.
  std::map<std::pair<int, int>, std::vector<int64_t>> whole;  // precision -> layers
  std::map<std::tuple<std::string, int, int>, std::vector<int64_t>> single;
  for (int64_t l = 0; l <= max_layer; ++l) {
    std::map<std::pair<int, int>, int> count;
    std::map<std::string, LinearPrecision> cell;
    int off_rest = 0;
    for (const std::string& t : types) {
      cell[t] = resolve(l, t);
      ++count[{cell[t].wbits, cell[t].group_size}];
      off_rest += cell[t] != rest[t];
    }
    if (off_rest == 0) continue;
    std::pair<int, int> v = count.begin()->first;
    for (const auto& [value, n] : count) {
      if (n > count[v]) v = value;
    }
    const int off_v = static_cast<int>(types.size()) - count[v];
    if (1 + off_v < off_rest) {
      whole[v].push_back(l);
      for (const std::string& t : types) {
        if (std::make_pair(cell[t].wbits, cell[t].group_size) != v) {
          single[{t, cell[t].wbits, cell[t].group_size}].push_back(l);
        }
      }
    } else {
      for (const std::string& t : types) {
        if (cell[t] != rest[t]) single[{t, cell[t].wbits, cell[t].group_size}].push_back(l);
      }
    }
  }
  for (const auto& [v, layers] : whole) {
    out.push_back({FormatLayerRanges(layers), "", v.first, v.second});
  }
  std::vector<QuantOverride> layered;
  for (const auto& [k, layers] : single) {
    layered.push_back({FormatLayerRanges(layers), std::get<0>(k), std::get<1>(k), std::get<2>(k)});
  }
  std::sort(layered.begin(), layered.end(), [](const QuantOverride& a, const QuantOverride& b) {
    return std::make_tuple(a.layers, a.linear, a.wbits, a.group_size) <
           std::make_tuple(b.layers, b.linear, b.wbits, b.group_size);
  });
  out.insert(out.end(), layered.begin(), layered.end());
  q->wbits = canonical_base.wbits;
  q->group_size = canonical_base.group_size;
  q->overrides = std::move(out);
  return absl::OkStatus();
}

std::string OverridesText(const std::vector<QuantOverride>& overrides) {
  std::vector<std::string> parts;
  for (const QuantOverride& o : overrides) parts.push_back(EntryText(o));
  return absl::StrJoin(parts, " ");
}

StatusOr<QuantOverride> ParseOverrideEntry(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", AV(text), "\": ", AV(why),
                     " (entries such as L0-3:w4, down_proj:w4g64, L5:q_proj:fp)"));
  };
  std::vector<std::string> parts = absl::StrSplit(AV(text), ':');
  QuantOverride o;
  const std::string value = parts.back();
  parts.pop_back();
  for (const std::string& p : parts) {
    if (!p.empty() && p[0] == 'L' && o.layers.empty()) {
      o.layers = p.substr(1);
      if (!ParseLayerRanges(o.layers).ok()) return bad(absl::StrCat("bad layers \"", p, "\""));
    } else if (o.linear.empty() && SelectedTypes(p).ok() && !p.empty()) {
      o.linear = p;
    } else {
      return bad(absl::StrCat("\"", p, "\" is neither L<layers> nor a linear type"));
    }
  }
  if (value == "fp") {
    o.wbits = kKeepFpBits;
    return o;
  }
  absl::string_view v = value;
  const size_t g = v.find('g');
  absl::string_view w = v.substr(0, g);
  if (!w.empty()) {
    if (w[0] != 'w' || !absl::SimpleAtoi(w.substr(1), &o.wbits) || o.wbits <= 0) {
      return bad(absl::StrCat("\"", value, "\" is not fp, w<bits>, g<group> or w<bits>g<group>"));
    }
  }
  if (g != absl::string_view::npos &&
      (!absl::SimpleAtoi(v.substr(g + 1), &o.group_size) || o.group_size == 0)) {
    return bad(absl::StrCat("\"", value, "\" has no group size after g"));
  }
  if (o.wbits == 0 && o.group_size == 0) return bad("sets neither bits nor group");
  return o;
}

Status ValidateOverrideLayers(const QuantConfig& q, int64_t num_layers) {
  for (size_t i = 0; i < q.overrides.size(); ++i) {
    if (q.overrides[i].layers.empty()) continue;
    auto layers = ParseLayerRanges(q.overrides[i].layers);
    if (!layers.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("quant.overrides[", i, "].layers: ", layers.status().message()));
    }
    if (!layers->empty() && layers->back() >= num_layers) {
      return absl::InvalidArgumentError(
          absl::StrCat("quant.overrides[", i, "].layers: layer ", layers->back(),
                       " is past the model's last layer (num_hidden_layers = ", num_layers, ")"));
    }
  }
  return absl::OkStatus();
}

std::string SensitivityUnit(const QuantConfig& q) {
  if (q.overrides.size() != 2) return "";
  const QuantOverride& all = q.overrides[0];
  const QuantOverride& unit = q.overrides[1];
  if (!all.layers.empty() || !all.linear.empty() || all.wbits != kKeepFpBits) return "";
  if (unit.wbits >= kKeepFpBits || unit.layers.empty() == unit.linear.empty()) return "";
  if (!unit.linear.empty()) return unit.linear;
  auto layers = ParseLayerRanges(unit.layers);
  if (!layers.ok() || layers->size() != 1) return "";
  return absl::StrCat("layer ", layers->front());
}

double AverageBitsPerWeight(const QuantConfig& q, const std::vector<LayerLinears>& layers) {
  double bits = 0, weights = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    for (const auto& [name, count] : layers[l]) {
      bits += static_cast<double>(count) *
              ResolveLinearPrecision(q, static_cast<int64_t>(l), name).wbits;
      weights += static_cast<double>(count);
    }
  }
  return weights > 0 ? bits / weights : 0;
}

}  // namespace bitsweep
