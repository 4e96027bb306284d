// Fork-join helper behind wsc::parallel_for.
#include "wsc/parallel.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace wsc {
namespace {
std::atomic<int> g_threads{0};

int default_threads() {
  unsigned h = std::thread::hardware_concurrency();
  return h == 0 ? 1 : int(h);
}
}  // namespace

int get_num_threads() {
  int t = g_threads.load();
  return t > 0 ? t : default_threads();
}

void set_num_threads(int n) { g_threads.store(n > 0 ? n : 0); }

int64_t num_blocks(int64_t n, int64_t min_block) {
  if (n <= 0) return 0;
  int64_t by_size = (n + min_block - 1) / min_block;
  return std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), by_size));
}

void parallel_for(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (n_tasks <= 0) return;
  int64_t n_threads = std::min<int64_t>(get_num_threads(), n_tasks);
  if (n_threads <= 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&]() {
    for (int64_t t = next++; t < n_tasks; t = next++) {
      try {
        fn(t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = n_tasks;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(size_t(n_threads - 1));
  for (int64_t i = 1; i < n_threads; ++i) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace wsc
