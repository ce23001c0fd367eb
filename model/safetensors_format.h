// Internal to model/: what the safetensors reader (safetensors.cc) and writer
// (safetensors_writer.cc) share: the Hugging Face file names, the reserved metadata key and the
// mapping between the format's dtypes and ATen's.
#pragma once

#include <c10/core/ScalarType.h>

#include <optional>
#include <string>

#include "common/status.h"
#include "model/safetensors.h"

// The format is little-endian and both the reader (aliasing the mapping) and the writer (dumping
// tensor memory) rely on the host byte order being the file's.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O assumes a little-endian host");

namespace bitsweep::model::safetensors_format {

inline constexpr char kIndexName[] = "model.safetensors.index.json";
inline constexpr char kSingleName[] = "model.safetensors";
inline constexpr char kMetadataKey[] = "__metadata__";

// An error of the errno-derived code whose message is `what` and strerror(err).
Status ErrnoError(int err, const std::string& what);

at::ScalarType ToScalarType(StDType dtype);
// nullopt for an ATen dtype the format (as bitsweep writes it) has no name for.
std::optional<StDType> FromScalarType(at::ScalarType type);

}  // namespace bitsweep::model::safetensors_format
