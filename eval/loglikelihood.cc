#include "eval/loglikelihood.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <optional>

#include "absl/strings/str_cat.h"
#include "model/qwen3.h"

namespace bitsweep::eval {
namespace {

// Positions whose logits are read per LM-head call: bounds the [chunk, vocab] fp32 buffer.
constexpr int64_t kHeadChunk = 64;

// One request after truncation: the tokens fed to the model and what its scored positions
// predict. Position p of `input` predicts input[p + 1] (or, for the last one, the final token).
struct Prepared {
  std::vector<int32_t> input;
  std::vector<int32_t> targets;  // the continuation; scored positions are the last targets.size()
};

// A forward row: tokens in storage order with their RoPE positions and visibility ends.
struct Row {
  std::vector<int32_t> ids;
  std::vector<int64_t> pos;
  std::vector<int64_t> end;     // empty = plain causal row
  std::vector<int64_t> parent;  // prefix-tree rows only
  // For each request placed in this row: its index and the storage index of each scored
  // position, in continuation order.
  std::vector<std::pair<size_t, std::vector<int64_t>>> placed;
};

int64_t CommonPrefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<int64_t>(i);
}

std::vector<int64_t> ScoredTail(const std::vector<int64_t>& storage_of_depth, size_t n) {
  return std::vector<int64_t>(storage_of_depth.end() - static_cast<int64_t>(n),
                              storage_of_depth.end());
}

std::vector<Row> PlainRows(const std::vector<Prepared>& reqs) {
  std::vector<Row> rows;
  rows.reserve(reqs.size());
  for (size_t r = 0; r < reqs.size(); ++r) {
    Row row;
    row.ids = reqs[r].input;
    const int64_t L = static_cast<int64_t>(row.ids.size());
    row.pos.resize(L);
    std::iota(row.pos.begin(), row.pos.end(), 0);
    std::vector<int64_t> storage(L);
    std::iota(storage.begin(), storage.end(), 0);
    row.placed.push_back({r, ScoredTail(storage, reqs[r].targets.size())});
    rows.push_back(std::move(row));
  }
  return rows;
}

// Requests in token order share their longest common prefixes with their predecessor, and each
// new suffix hangs off the rightmost path of the tree built so far, so appending it keeps the
// row in preorder: the subtree of every node is the contiguous range [node, end[node]).
std::vector<Row> PrefixTreeRows(const std::vector<Prepared>& reqs, int64_t max_row_tokens) {
  std::vector<size_t> order(reqs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return reqs[a].input < reqs[b].input; });
  std::vector<Row> rows;
  Row row;
  std::vector<int64_t> path;  // storage index of the previous request's token at each depth
  const std::vector<int32_t>* prev = nullptr;
  auto close = [&]() {
    if (row.ids.empty()) return;
    const int64_t n = static_cast<int64_t>(row.ids.size());
    row.end.resize(n);
    for (int64_t i = 0; i < n; ++i) row.end[i] = i + 1;
    for (int64_t i = n - 1; i >= 0; --i) {
      if (row.parent[i] >= 0) row.end[row.parent[i]] = std::max(row.end[row.parent[i]], row.end[i]);
    }
    rows.push_back(std::move(row));
    row = Row();
    path.clear();
    prev = nullptr;
  };
  for (size_t r : order) {
    const std::vector<int32_t>& in = reqs[r].input;
    const int64_t L = static_cast<int64_t>(in.size());
    int64_t shared = prev ? CommonPrefix(*prev, in) : 0;
    if (!row.ids.empty() && static_cast<int64_t>(row.ids.size()) + (L - shared) > max_row_tokens) {
      close();
      shared = 0;
    }
    path.resize(L);
    for (int64_t d = shared; d < L; ++d) {
      const int64_t idx = static_cast<int64_t>(row.ids.size());
      row.ids.push_back(in[d]);
      row.pos.push_back(d);
      row.parent.push_back(d == 0 ? -1 : path[d - 1]);
      path[d] = idx;
    }
    row.placed.push_back({r, ScoredTail(path, reqs[r].targets.size())});
    prev = &in;
  }
  close();
  return rows;
}

// One forward's rows [first, last) of the length-sorted rows, as the model's input.
struct Batch {
  size_t first = 0, last = 0;
  at::Tensor ids;  // [B, T]
  model::RopeTables rope;
  int64_t tokens = 0;  // real tokens (padding excluded)
};

Batch MakeBatch(const model::Qwen3Model& model, const std::vector<Row>& rows, size_t first,
                const LoglikelihoodOptions& options) {
  Batch batch;
  batch.first = first;
  const int64_t T = static_cast<int64_t>(rows[first].ids.size());
  size_t last = first + 1;
  while (last < rows.size() && static_cast<int64_t>(last - first) < options.batch_size &&
         static_cast<int64_t>(last - first + 1) * T <= options.max_batch_tokens) {
    ++last;
  }
  batch.last = last;
  const int64_t B = static_cast<int64_t>(last - first);
  bool tree = false;
  at::Tensor ids = at::zeros({B, T}, at::kLong);
  at::Tensor pos = at::zeros({B, T}, at::kLong);
  at::Tensor end = at::full({B, T}, T, at::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto pos_a = pos.accessor<int64_t, 2>();
  auto end_a = end.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const Row& row = rows[first + b];
    tree = tree || !row.end.empty();
    for (size_t i = 0; i < row.ids.size(); ++i) {
      ids_a[b][i] = row.ids[i];
      pos_a[b][i] = row.pos[i];
      if (!row.end.empty()) end_a[b][i] = row.end[i];
    }
    batch.tokens += static_cast<int64_t>(row.ids.size());
  }
  if (tree) {
    batch.rope = model.MakeRope(pos);
    batch.rope.mask.subtree_end = end.to(model.device());
  } else {
    batch.rope = model.MakeRope(T);
  }
  batch.ids = ids;
  return batch;
}

// Adds the log-probabilities of the batch's continuations to `run` from its final-normed hidden
// states, hidden: [B * T, hidden].
void ScoreBatch(const model::Qwen3Model& model, const at::Tensor& hidden,
                const std::vector<Row>& rows, const Batch& batch,
                const std::vector<Prepared>& reqs, LoglikelihoodRun& run) {
  const int64_t B = batch.ids.size(0), T = batch.ids.size(1);
  // Unique flat positions to read, and per scored token: (request, which unique position).
  std::vector<int64_t> flat;
  std::vector<int64_t> slot_of(B * T, -1);
  struct Read {
    size_t request;
    int64_t slot;
    int32_t target;
  };
  std::vector<Read> reads;
  for (int64_t b = 0; b < B; ++b) {
    for (const auto& [r, storage] : rows[batch.first + b].placed) {
      const std::vector<int32_t>& targets = reqs[r].targets;
      run.results[r] = {0.0, true};
      for (size_t k = 0; k < targets.size(); ++k) {
        const int64_t f = b * T + storage[k];
        if (slot_of[f] < 0) {
          slot_of[f] = static_cast<int64_t>(flat.size());
          flat.push_back(f);
        }
        reads.push_back({r, slot_of[f], targets[k]});
      }
    }
  }
  const int64_t U = static_cast<int64_t>(flat.size());
  at::Tensor flat_t = at::from_blob(flat.data(), {U}, at::kLong).to(hidden.device());
  // Per unique slot: the fp32 log-softmax row is needed only at the targets read from it.
  std::vector<std::vector<size_t>> reads_of_slot(U);
  for (size_t i = 0; i < reads.size(); ++i) reads_of_slot[reads[i].slot].push_back(i);
  for (int64_t s = 0; s < U; s += kHeadChunk) {
    const int64_t n = std::min(kHeadChunk, U - s);
    at::Tensor h = hidden.index_select(0, flat_t.narrow(0, s, n));
    // The chunk's reads as (row, target) pairs, in the order they are added up below.
    std::vector<int64_t> read_rows, read_targets;
    for (int64_t j = 0; j < n; ++j) {
      for (size_t i : reads_of_slot[s + j]) {
        read_rows.push_back(j);
        read_targets.push_back(reads[i].target);
      }
    }
    const int64_t R = static_cast<int64_t>(read_rows.size());
    // log_softmax(logits)[target] = logit[target] - logsumexp(logits), without the whole
    // vocabulary's logits on any tensor-parallel rank.
    const model::Qwen3Model::TokenScores scores =
        model.ScoreTokens(h, at::from_blob(read_rows.data(), {R}, at::kLong).clone(),
                          at::from_blob(read_targets.data(), {R}, at::kLong).clone());
    // Read on the host (no copy when the model runs there).
    const at::Tensor lse_t = scores.logsumexp.cpu(), am_t = scores.argmax.cpu();
    const at::Tensor tl_t = scores.target_logit.cpu();
    auto lse = lse_t.accessor<float, 1>();
    auto am = am_t.accessor<int64_t, 1>();
    auto tl = tl_t.accessor<float, 1>();
    int64_t k = 0;
    for (int64_t j = 0; j < n; ++j) {
      for (size_t i : reads_of_slot[s + j]) {
        const Read& rd = reads[i];
        LoglikelihoodResult& res = run.results[rd.request];
        res.logprob += static_cast<double>(tl[k++] - lse[j]);
        res.greedy = res.greedy && am[j] == rd.target;
      }
    }
  }
}

}  // namespace

StatusOr<LoglikelihoodRun> ScoreLoglikelihood(const model::Qwen3Model& model,
                                              const std::vector<LoglikelihoodRequest>& requests,
                                              const LoglikelihoodOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const model::Qwen3Config& config = model.config();
  int64_t max_length = options.max_length;
  if (max_length <= 0) {
    max_length = config.max_position_embeddings > 0 ? config.max_position_embeddings : 2048;
  }
  if (options.batch_size < 1 || options.max_batch_tokens < 1 || options.max_row_tokens < 1) {
    return absl::InvalidArgumentError(
        "batch_size, max_batch_tokens and max_row_tokens must be positive");
  }

  std::vector<Prepared> reqs(requests.size());
  int64_t longest = 0;
  for (size_t r = 0; r < requests.size(); ++r) {
    const LoglikelihoodRequest& q = requests[r];
    if (q.context.empty() || q.continuation.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("log-likelihood request ", r, " has an empty ",
                       q.context.empty() ? "context" : "continuation"));
    }
    if (static_cast<int64_t>(q.continuation.size()) > max_length) {
      return absl::InvalidArgumentError(
          absl::StrCat("log-likelihood request ", r, ": continuation of ", q.continuation.size(),
                       " tokens exceeds the context limit of ", max_length));
    }
    std::vector<int32_t> whole = q.context;
    whole.insert(whole.end(), q.continuation.begin(), q.continuation.end());
    for (int32_t t : whole) {
      if (t < 0 || t >= config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("log-likelihood request ", r, ": token id ",
                                                       t, " outside the vocabulary (",
                                                       config.vocab_size, ")"));
      }
    }
    const int64_t keep = std::min<int64_t>(static_cast<int64_t>(whole.size()), max_length + 1);
    reqs[r].input.assign(whole.end() - keep, whole.end() - 1);
    reqs[r].targets = q.continuation;
    longest = std::max<int64_t>(longest, static_cast<int64_t>(reqs[r].input.size()));
  }

  std::vector<Row> rows = options.prefix_reuse
                              ? PrefixTreeRows(reqs, std::max(options.max_row_tokens, longest))
                              : PlainRows(reqs);
  // Longest rows first (lm-eval's order: the first batch shows whether memory suffices).
  std::stable_sort(rows.begin(), rows.end(),
                   [](const Row& a, const Row& b) { return a.ids.size() > b.ids.size(); });

  LoglikelihoodRun run;
  run.results.resize(requests.size());
  run.rows = static_cast<int64_t>(rows.size());
  int64_t done = 0;
  c10::InferenceMode guard;
  // A lazy (layer-streamed) model runs groups of batches through the layers one layer at a time;
  // a group's hidden states take at most stream_group_bytes. A resident model: one batch each.
  const int64_t element = model.dtype() == model::ComputeDType::kBFloat16 ? 2 : 4;
  const int64_t token_bytes = config.hidden_size * element;
  std::optional<Batch> next;  // made but not yet run: it did not fit the previous group
  for (size_t first = 0; first < rows.size() || next;) {
    std::vector<Batch> group;
    int64_t group_bytes = 0;
    while (next || first < rows.size()) {
      if (!next) {
        next = MakeBatch(model, rows, first, options);
        first = next->last;
      }
      const int64_t bytes = next->ids.numel() * token_bytes;
      if (!group.empty() && (!model.lazy() || group_bytes + bytes > options.stream_group_bytes)) {
        break;
      }
      group_bytes += bytes;
      run.tokens += next->tokens;
      run.padded_tokens += next->ids.numel();
      ++run.forwards;
      group.push_back(std::move(*next));
      next.reset();
    }
    std::vector<at::Tensor> hidden;
    std::vector<model::RopeTables> ropes;
    for (const Batch& b : group) {
      hidden.push_back(model.Embed(b.ids));
      ropes.push_back(b.rope);
    }
    RETURN_IF_ERROR(model.RunLayers(hidden, ropes));
    for (size_t g = 0; g < group.size(); ++g) {
      const Batch& b = group[g];
      at::Tensor h = model.FinalNorm(hidden[g]);
      hidden[g] = at::Tensor();
      ScoreBatch(model, h.view({h.size(0) * h.size(1), h.size(-1)}), rows, b, reqs, run);
      for (size_t r = b.first; r < b.last; ++r) done += static_cast<int64_t>(rows[r].placed.size());
      if (options.progress) options.progress(done, static_cast<int64_t>(requests.size()));
    }
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return run;
}

}  // namespace bitsweep::eval
