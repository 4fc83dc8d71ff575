// Batched distances between Q query vectors and a gallery of G vectors (float32, dim D, rows
// contiguous): the full Q×G matrix and/or the top k gallery entries per query.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/thread_pool.h"

namespace facesight {

enum class DistanceMetric : uint8_t {
  SquaredEuclidean,  // Σ (q − g)²; smaller is nearer
  Euclidean,         // its square root (the seed's compare_faces); smaller is nearer
  Cosine,            // similarity q·g / (|q| |g|), 0 for a zero vector; larger is nearer
};

struct DistanceParams {
  int64_t queries = 0, gallery = 0, dim = 0;
  DistanceMetric metric = DistanceMetric::Euclidean;
  bool normalized = true;  // Cosine: the inputs are L2-normalised, so cosine = q·g (no norms computed)
  int32_t top_k = 0;       // 0: no top-k
};

// Scratch: the inverse norms for Cosine on unnormalised inputs, else nothing.
size_t DistanceWorkspaceSize(const DistanceParams& params);

// distances: [Q][G] or null. top_index / top_value: [Q][top_k] or null (both or neither), the k
// nearest gallery entries per query, nearest first (smallest distance, largest similarity); equal
// values keep the lower index first. When k > G the tail holds index −1 and ±infinity. Euclidean
// terms are summed as differences, so a vector's distance to itself is exactly 0. Parallel over
// queries; within a task the gallery is walked in blocks that stay in cache across its queries.
void Distances(const DistanceParams& params, const float* queries, const float* gallery, float* distances,
               int32_t* top_index, float* top_value, void* workspace, ThreadPool* pool);

}  // namespace facesight
