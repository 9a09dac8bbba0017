// SPDX-License-Identifier: MIT
// One strata::arena shared by worker threads, with cross-thread frees.
//
// Producers build pmr containers on the arena and hand them to consumers,
// which destroy them: every block a consumer frees was allocated on another
// thread. The arena serves this without a lock on the fast path: each thread
// has its own cache per size class, a free goes into the freeing thread's
// cache, and full caches hand batches back to a central pool per class.
// The arena reserves its whole capacity once, at construction; after that
// it never calls its upstream.

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory_resource>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <strata/arena.hpp>
#include <strata/literals.hpp>
#include <strata/page_resource.hpp>

namespace {

bool all_ok = true;
void check(bool condition, const char* claim) {
  std::printf("%s: %s\n", condition ? "ok  " : "FAIL", claim);
  all_ok = all_ok && condition;
}

// A message: a vector of numbers and a label, both on the arena.
struct message {
  std::pmr::vector<int> values;
  std::pmr::string label;
};

// A small blocking queue. Its own bookkeeping uses the default allocator; only
// the message contents live on the arena.
class mailbox {
 public:
  void push(message m) {
    {
      std::lock_guard lock{mutex_};
      queue_.push_back(std::move(m));
    }
    ready_.notify_one();
  }
  // Returns nothing once closed and empty. Move construction keeps the
  // blocks and their resource; move *assignment* into a container on another
  // resource would copy instead (pmr allocators do not propagate).
  std::optional<message> pop() {
    std::unique_lock lock{mutex_};
    ready_.wait(lock, [&] { return !queue_.empty() || closed_; });
    if (queue_.empty()) return std::nullopt;
    std::optional<message> out{std::move(queue_.front())};
    queue_.pop_front();
    return out;
  }
  void close() {
    {
      std::lock_guard lock{mutex_};
      closed_ = true;
    }
    ready_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<message> queue_;
  bool closed_ = false;
};

}  // namespace

int main() {
  using namespace strata::literals;  // 1_MiB: a std::size_t, checked at compile time
  strata::arena heap{{.capacity = 32_MiB}, strata::system_pages()};  // one mmap, up front
  constexpr int producers = 2, consumers = 2, per_producer = 5'000;
  mailbox box;
  std::atomic<long long> consumed_sum{0};
  {
    std::vector<std::jthread> consumer_threads;
    for (int c = 0; c < consumers; ++c) {
      consumer_threads.emplace_back([&] {
        while (std::optional<message> m = box.pop()) {
          consumed_sum += std::accumulate(m->values.begin(), m->values.end(), 0LL);
        }  // each message is destroyed here: its blocks are freed on this thread
      });
    }
    {
      std::vector<std::jthread> producer_threads;
      for (int p = 0; p < producers; ++p) {
        producer_threads.emplace_back([&, p] {
          for (int i = 0; i < per_producer; ++i) {
            // Mixed sizes: 1..64 ints, labels past the small-string buffer.
            message m{std::pmr::vector<int>(static_cast<std::size_t>(1 + i % 64), p, &heap),
                      std::pmr::string(static_cast<std::size_t>(20 + i % 100), 'x', &heap)};
            box.push(std::move(m));
          }
        });
      }
    }  // jthread joins the producers here
    box.close();
  }  // ...and the consumers here

  const strata::resource_stats s = heap.stats();
  const strata::arena::details_type d = heap.details();
  std::printf("allocations %llu, deallocations %llu, peak in use %zu bytes, remote frees >= %llu\n",
              static_cast<unsigned long long>(s.allocations),
              static_cast<unsigned long long>(s.deallocations), s.peak_bytes_in_use,
              static_cast<unsigned long long>(d.remote_frees));
  long long expected = 0;
  for (int p = 0; p < producers; ++p) {
    for (int i = 0; i < per_producer; ++i) expected += static_cast<long long>(1 + i % 64) * p;
  }
  check(consumed_sum == expected, "every message arrived intact");
  check(s.allocations == 2ull * producers * per_producer, "two blocks per message");
  check(s.deallocations == s.allocations && s.bytes_in_use == 0, "every block came back");
  check(d.remote_frees > 0, "frees happened on threads that did not allocate");
  check(s.upstream_allocations == 1, "the region was the only upstream call");
  check(s.misuse_detected == 0 && s.failed_allocations == 0, "no misuse, no exhaustion");
  return all_ok ? 0 : 1;
}
