// safetensors I/O against the tools that bound it, in one run on one file:
//   read : open a ~1 GB safetensors file (page cache warm) and touch every byte of every tensor
//          (a 64-bit checksum over the zero-copy views)      vs  `cat FILE > /dev/null`
//   write: ShardedWriter writing the same tensors from memory vs  `cp FILE COPY` (from page cache)
// Each timing is the minimum of --repeats runs, read and cat interleaved so both see the same cache
// state; each write starts after sync() so neither inherits the other's writeback backlog. Also shown, for information: bf16 -> f32 conversion of every tensor from the views.
//
//   build-*/bench/bench_io [--gb 1.0] [--repeats 5] [--dir DIR]
// The file is generated in DIR (default: a fresh folder under /tmp) and removed at the end.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "tensor/convert.h"

namespace fs = std::filesystem;
using namespace evomerge;

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double time_shell(const std::string& cmd) {
  double t0 = now_s();
  if (std::system(cmd.c_str()) != 0) {
    fmt::print(stderr, "bench_io: command failed: {}\n", cmd);
    std::exit(1);
  }
  return now_s() - t0;
}

// Touches every byte of every tensor through the zero-copy views: 8 bytes at a time, tail bytewise.
uint64_t checksum_all(const SafetensorsFile& f) {
  uint64_t sum = 0;
  for (const auto& t : f.tensors()) {
    TensorView v = f.view(t);
    const std::byte* p = v.data;
    size_t n = v.nbytes, i = 0;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (; i + 32 <= n; i += 32) {
      uint64_t w[4];
      std::memcpy(w, p + i, 32);
      a += w[0];
      b ^= w[1];
      c += w[2];
      d ^= w[3];
    }
    for (; i < n; ++i) a += static_cast<uint8_t>(p[i]);
    sum += a + b + c + d;
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  double gb = 1.0;
  int repeats = 5;
  fs::path base;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--gb" && i + 1 < argc) gb = std::atof(argv[++i]);
    else if (a == "--repeats" && i + 1 < argc) repeats = std::max(1, std::atoi(argv[++i]));
    else if (a == "--dir" && i + 1 < argc) base = argv[++i];
    else {
      fmt::print(stderr, "usage: bench_io [--gb 1.0] [--repeats 5] [--dir DIR]\n");
      return 2;
    }
  }
  fs::path dir = (base.empty() ? fs::temp_directory_path() : base) / fmt::format("evomerge-io-bench-{}", getpid());
  fs::create_directories(dir / "written");

  // A Llama-like tensor list in bf16: 4096-wide matrices of 4096 x 4096 and 11008 x 4096, plus norms,
  // until the requested size is reached.
  std::vector<TensorSpec> specs;
  uint64_t total = 0, target = static_cast<uint64_t>(gb * 1e9);
  for (int layer = 0; total < target; ++layer) {
    for (auto [suffix, rows] : {std::pair{"self_attn.q_proj.weight", 4096}, {"self_attn.k_proj.weight", 1024},
                                {"mlp.up_proj.weight", 11008}, {"input_layernorm.weight", 0}}) {
      Shape shape = rows ? Shape{rows, 4096} : Shape{4096};
      specs.push_back({fmt::format("model.layers.{}.{}", layer, suffix), DType::BF16, shape});
      total += specs.back().nbytes();
    }
  }
  // Source bytes in memory (not all zero, so nothing can be skipped).
  std::vector<std::vector<std::byte>> data;
  std::mt19937_64 rng(42);
  for (const auto& s : specs) {
    data.emplace_back(s.nbytes());
    auto& d = data.back();
    for (size_t i = 0; i + 8 <= d.size(); i += 4096) {
      uint64_t r = rng();
      std::memcpy(d.data() + i, &r, 8);
    }
  }
  auto write_all = [&](const fs::path& out) {
    ShardedWriter w(out, specs);
    for (size_t i = 0; i < specs.size(); ++i) w.write(specs[i].name, data[i]);
    w.finish();
  };
  write_all(dir);
  const fs::path file = dir / "model.safetensors";
  const uint64_t file_bytes = fs::file_size(file);
  fmt::print("file: {} ({:.3f} GB, {} tensors)\n", file.string(), file_bytes / 1e9, specs.size());
  time_shell(fmt::format("cat '{}' > /dev/null", file.string()));  // warm the page cache

  double best_read = 1e9, best_cat = 1e9, best_convert = 1e9, best_write = 1e9, best_cp = 1e9;
  uint64_t reference_sum = 0;
  std::vector<float> f32;
  for (int r = 0; r < repeats; ++r) {
    best_cat = std::min(best_cat, time_shell(fmt::format("cat '{}' > /dev/null", file.string())));
    double t0 = now_s();
    {
      SafetensorsFile f = SafetensorsFile::open(file);
      uint64_t sum = checksum_all(f);
      benchmark::DoNotOptimize(sum);
      if (r == 0) reference_sum = sum;
      else if (sum != reference_sum) {
        fmt::print(stderr, "bench_io: checksum changed between runs\n");
        return 1;
      }
    }
    best_read = std::min(best_read, now_s() - t0);
    t0 = now_s();
    {
      SafetensorsFile f = SafetensorsFile::open(file);
      for (const auto& t : f.tensors()) {
        TensorView v = f.view(t);
        f32.resize(static_cast<size_t>(v.numel()));
        convert_to_f32(v.dtype, v.data, f32.data(), f32.size());
        benchmark::DoNotOptimize(f32.data());
      }
    }
    best_convert = std::min(best_convert, now_s() - t0);

    // Both writes start from the same state: no dirty pages queued for writeback (not timed).
    fs::remove_all(dir / "written");
    fs::create_directories(dir / "written");
    ::sync();
    t0 = now_s();
    write_all(dir / "written");
    best_write = std::min(best_write, now_s() - t0);
    fs::remove(dir / "copy.safetensors");
    ::sync();
    best_cp = std::min(best_cp, time_shell(fmt::format("cp '{}' '{}'", file.string(), (dir / "copy.safetensors").string())));
  }
  auto gbps = [&](double s) { return file_bytes / s / 1e9; };
  fmt::print("{:<44} {:>9} {:>9}\n", "best of " + std::to_string(repeats), "seconds", "GB/s");
  fmt::print("{:<44} {:>9.3f} {:>9.2f}\n", "cat FILE > /dev/null", best_cat, gbps(best_cat));
  fmt::print("{:<44} {:>9.3f} {:>9.2f}\n", "evomerge read: open + touch every byte", best_read, gbps(best_read));
  fmt::print("{:<44} {:>9.3f} {:>9.2f}\n", "evomerge read + bf16->f32 every tensor", best_convert, gbps(best_convert));
  fmt::print("{:<44} {:>9.3f} {:>9.2f}\n", "cp FILE COPY", best_cp, gbps(best_cp));
  fmt::print("{:<44} {:>9.3f} {:>9.2f}\n", "evomerge write: ShardedWriter from memory", best_write, gbps(best_write));
  fmt::print("read / cat  = {:.2f}x\n", best_read / best_cat);
  fmt::print("write / cp  = {:.2f}x\n", best_write / best_cp);
  fs::remove_all(dir);
  return 0;
}
