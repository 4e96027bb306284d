// Minimal fork-join parallelism over std::thread: the kernels split work into
// contiguous blocks, one per thread. Exceptions thrown in a worker are rethrown
// in the caller.
#pragma once
#include <cstdint>
#include <functional>

namespace wsc {

// Number of threads the kernels use (default: hardware concurrency).
int get_num_threads();
// Set the number of threads; n < 1 restores the default.
void set_num_threads(int n);

// Calls fn(task) for task in [0, n_tasks) on up to get_num_threads() threads.
void parallel_for(int64_t n_tasks, const std::function<void(int64_t)>& fn);

// Number of blocks to cut n elements into: one per thread, none smaller than min_block.
int64_t num_blocks(int64_t n, int64_t min_block);

}  // namespace wsc
