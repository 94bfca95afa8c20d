// A tile's outcome as JSON: in the metrics' "tiles" array and in the work folder's record of a
// finished tile (read back when a run resumes).
#pragma once

#include <nlohmann/json.hpp>

#include "dippas/pipeline/tiled_dip.h"

namespace dippas {

nlohmann::json TileJson(const TileOutcome& t);
// The outcome recorded by TileJson, for `tile`; nlohmann::json's exceptions on a malformed one.
TileOutcome TileFromJson(const nlohmann::json& j, const Tile& tile);

}  // namespace dippas
