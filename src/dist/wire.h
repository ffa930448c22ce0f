// The bytes of scoring jobs and their results between MPI ranks (evolve/work.h): a flat encoding in
// the machine's byte order (the ranks of one job run the same binary on one architecture). Decoding
// is bounded: every count and length is checked against the bytes left, and a bad message is one
// Error naming what was being read.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "evolve/work.h"

namespace evomerge::wire {

std::string encode_job(uint64_t id, const ScoreJob& job);
std::pair<uint64_t, ScoreJob> decode_job(std::string_view bytes);

std::string encode_result(uint64_t id, const JobResult& result);
std::pair<uint64_t, JobResult> decode_result(std::string_view bytes);

}  // namespace evomerge::wire
