// The mergekit compatibility suite: every config in tests/data/mergekit-configs (mergekit's own
// examples, the configs its tests build and configs quoted in published model cards, each file
// naming its source) run unmodified against generated models with the names they reference (bare
// names as local folders, org/name in a private Hugging Face cache; 40 layers so the 13B layer
// ranges fit). Each file's "# expect:" line says the outcome: `merged check=K warnings=N` (the
// merge runs with N "has no effect" warnings) or `refused: TEXT` (the error contains TEXT, the
// reason mergekit refuses it too). Every merged config is held, value by value, to
// tools/fixtures/merge_reference.py (an independent numpy reimplementation of every method, run on
// the plan's inputs and evaluated parameters) when a python3 with numpy is present; check K is a
// second recomputation here in C++ that also evaluates the parameters from the config (linear,
// task_arithmetic, slerp, copy, passthrough_scale; `runs`: none). docs/mergekit-compat.md lists
// every config and its outcome.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "arch/arch.h"
#include "arch/test_support.h"
#include "common/error.h"
#include "common/progress.h"
#include "io/model_folder.h"
#include "merge/merge.h"
#include "merge/test_models.h"
#include "tensor/convert.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using testing::make_tiny_model;
using testing::tensor_f32;

struct Expect {
  bool merged = false;
  std::string check, refusal;
  int warnings = 0;
};

Expect read_expect(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  Expect e;
  while (std::getline(in, line)) {
    if (!line.starts_with("# expect: ")) continue;
    std::string s = line.substr(10);
    if (s.starts_with("refused: ")) {
      e.refusal = s.substr(9);
      return e;
    }
    e.merged = true;
    e.check = s.substr(s.find("check=") + 6, s.find(' ', s.find("check=")) - s.find("check=") - 6);
    e.warnings = std::stoi(s.substr(s.find("warnings=") + 9));
    return e;
  }
  ADD_FAILURE() << file << " has no '# expect:' line";
  return e;
}

// The "# arch: FAMILY" line of a config (the family of the models it names: gemma2, mistral,
// qwen2, ...; arch/test_support.h's tiny_config), "" for the default (Llama).
std::string read_arch(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("# arch: ")) return line.substr(8);
  return "";
}

// A tokenizer.json (tokenizers-library BPE) for the 16-token vocabulary of every generated model:
// what tokenizer_source / tokenizer: need to read.
nlohmann::json tiny_tokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int i = 0; i < 16; ++i) vocab[std::string(1, static_cast<char>('a' + i))] = i;
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", nlohmann::json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
}

// A generated model for a reference, seeded by the name: 40 layers for org/name references (the
// examples' 13B layer ranges), 4 for the tests' bare names; of the config's family (`arch`),
// Granite for granite_*, GPT-2 for gpt2_like.
fs::path make_model(const fs::path& root, const std::string& ref, const std::string& arch) {
  fs::path dir =
      ref.find('/') == std::string::npos
          ? root / ref
          : root / "hub" /
                ("models--" + ref.substr(0, ref.find('/')) + "--" + ref.substr(ref.find('/') + 1));
  fs::path folder = ref.find('/') == std::string::npos ? dir : dir / "snapshots" / "0123abcd";
  if (fs::exists(folder)) return folder;
  testing::TinySpec s;
  s.layers = ref.find('/') == std::string::npos ? 4 : 40;
  std::string family = ref.starts_with("granite") ? "granite" : ref == "gpt2_like" ? "gpt2" : arch;
  if (!family.empty()) {
    s.config = evomerge::testing::tiny_config(family);
    // mergekit's GPT-2 tests stack layers [0, 12] of a 12-layer model
    s.config[family == "gpt2" ? "n_layer" : "num_hidden_layers"] = family == "gpt2" ? 12 : s.layers;
  }
  make_tiny_model(folder, static_cast<uint32_t>(std::hash<std::string>{}(ref)), s);
  write_file_atomic(folder / "tokenizer.json", tiny_tokenizer().dump());
  if (folder != dir) {
    fs::create_directories(dir / "refs");
    write_file_atomic(dir / "refs" / "main", "0123abcd");
  }
  return folder;
}

// Tensors as f32, each folder opened once.
struct Reader {
  std::map<fs::path, std::unique_ptr<ModelWeights>> open;
  std::vector<float> operator()(const fs::path& dir, const std::string& name) {
    auto& w = open[dir];
    if (!w) w = std::make_unique<ModelWeights>(ModelWeights::open(dir));
    return to_f32(w->view(name));
  }
};

// A Python interpreter with numpy (python3-numpy, installed with python3-torch by setup.sh), or "".
const std::string& python_with_numpy() {
  static const std::string found = [] {
    for (std::string py : {"python3", "/usr/bin/python3"})
      if (std::system((py + " -c 'import numpy' >/dev/null 2>&1").c_str()) == 0) return py;
    return std::string();
  }();
  return found;
}

// The plan as tools/fixtures/merge_reference.py reads it: method, seed, input folders and, per
// output tensor, its inputs with their evaluated parameters (permuted embedding rows, when the
// tokenizer was merged, go to a raw f32 file beside it).
void write_plan_json(const MergePlan& plan, const fs::path& file) {
  nlohmann::json j = {
      {"method", plan.method}, {"seed", plan.random_seed}, {"models", nlohmann::json::array()}};
  for (const auto& m : plan.models) j["models"].push_back(m->folder().dir.string());
  size_t rows_files = 0;
  for (const auto& t : plan.tensors) {
    nlohmann::json jt = {
        {"name", t.name}, {"shape", t.shape}, {"base", t.base}, {"globals", t.globals}};
    for (const auto& in : t.inputs) {
      nlohmann::json ji = {{"model", in.model}, {"tensor", in.tensor}, {"params", in.params}};
      if (in.rows) {
        const fs::path rows = file.parent_path() / ("rows" + std::to_string(rows_files++) + ".f32");
        std::ofstream(rows, std::ios::binary)
            .write(reinterpret_cast<const char*>(in.rows->data()),
                   static_cast<std::streamsize>(in.rows->size() * sizeof(float)));
        ji["rows_file"] = rows.string();
      }
      jt["inputs"].push_back(ji);
    }
    j["tensors"].push_back(jt);
  }
  write_file_atomic(file, j.dump());
}

// Runs the Python reference on a merged folder; "" when every tensor matches, else its report.
std::string reference_mismatch(const MergePlan& plan, const fs::path& out, const fs::path& work) {
  const fs::path plan_file = work / "plan.json", log = work / "reference.log";
  write_plan_json(plan, plan_file);
  const fs::path script =
      fs::path(EVOMERGE_SOURCE_DIR) / "tools" / "fixtures" / "merge_reference.py";
  const std::string cmd = python_with_numpy() + " " + script.string() + " " + plan_file.string() +
                          " " + out.string() + " >" + log.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  return rc == 0 ? "" : read_text_file(log);
}

double scalar(const ParamMap& p, const std::string& name) {
  return *p.at(name).evaluate("", 0);
}

// The result mergekit's formula gives for one tensor, from the inputs' values (f32 of the stored
// bf16).
std::vector<double> expected_values(const Expect& e, const MergeConfig& c,
                                    const std::map<std::string, fs::path>& dirs,
                                    const std::string& tensor, Reader& read) {
  auto in = [&](const ModelRef& r) { return read(dirs.at(r.path), tensor); };
  std::vector<double> out;
  if (e.check == "copy" || e.check == "passthrough_scale") {
    auto x = in(c.models[0].model);
    const double s = e.check == "copy" || tensor.find("o_proj") == std::string::npos ? 1.0 : 0.0;
    for (float v : x) out.push_back(s * v);
  } else if (e.check == "linear" || e.check == "task_arithmetic") {
    std::vector<float> base;
    if (e.check == "task_arithmetic") base = in(*c.base_model);
    double wsum = 0;
    for (const auto& m : c.models) {
      const double w = scalar(m.parameters, "weight");
      auto x = in(m.model);
      if (out.empty()) out.assign(x.size(), 0.0);
      for (size_t i = 0; i < x.size(); ++i)
        out[i] += w * (e.check == "linear" ? x[i] : x[i] - base[i]);
      wsum += w;
    }
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = e.check == "linear" ? out[i] / wsum : base[i] + out[i];
  } else if (e.check ==
             "slerp") {  // mergekit's slerp: t of the way from the base to the other model
    const double t = scalar(c.parameters, "t");
    const ModelRef& other =
        c.models[0].model == *c.base_model ? c.models[1].model : c.models[0].model;
    auto a = in(*c.base_model), b = in(other);
    double na = 0, nb = 0, dot = 0;
    for (size_t i = 0; i < a.size(); ++i) na += double(a[i]) * a[i], nb += double(b[i]) * b[i];
    na = std::sqrt(na), nb = std::sqrt(nb);
    for (size_t i = 0; i < a.size(); ++i) dot += (a[i] / na) * (b[i] / nb);
    dot = std::clamp(dot, -1.0, 1.0);
    double s0 = 1 - t, s1 = t;
    if (std::fabs(dot) <= 0.9995) {
      const double theta = std::acos(dot);
      s0 = std::sin((1 - t) * theta) / std::sin(theta), s1 = std::sin(t * theta) / std::sin(theta);
    }
    for (size_t i = 0; i < a.size(); ++i) out.push_back(s0 * a[i] + s1 * b[i]);
  }
  return out;
}

TEST(MergekitCompat, EveryConfigMergesAsExpectedOrIsRefusedWithMergekitsReason) {
  Progress::set_global_enabled(false);
  const fs::path data = fs::path(EVOMERGE_SOURCE_DIR) / "tests" / "data" / "mergekit-configs";
  const fs::path root =
      fs::temp_directory_path() / ("evomerge_compat_suite_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "out");
  const fs::path cwd = fs::current_path();
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(data))
    if (entry.path().extension() == ".yml") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  const std::string doc =
      read_text_file(fs::path(EVOMERGE_SOURCE_DIR) / "docs" / "mergekit-compat.md");
  for (const auto& file : files)  // the page lists every config with its outcome
    EXPECT_NE(doc.find("`" + file.filename().string() + "`"), std::string::npos)
        << file.filename() << " is not in docs/mergekit-compat.md";
  size_t referenced = 0;
  EXPECT_GE(files.size(), 50u);
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    const Expect expect = read_expect(file);
    const std::string arch = read_arch(file);
    const fs::path out = root / "out" / file.stem();
    // Each config gets its own models (the same name may be another family in another config):
    // bare names are folders of its working directory, org/name in its private HF cache.
    const fs::path models = root / "models" / file.stem();
    fs::create_directories(models);
    fs::current_path(models);
    setenv("HF_HUB_CACHE", (models / "hub").c_str(), 1);
    std::string error;
    std::vector<std::string> warnings;
    MergeConfig config;
    std::map<std::string, fs::path> dirs;
    MergePlan plan;
    try {
      config = load_merge_config(file);
      for (const auto& r : config.referenced_models())
        dirs[r.path] = make_model(models, r.path, arch);
      ModelCache cache;
      plan = build_plan(config, cache, MergeOptions{.progress = false});
      warnings = plan.warnings;
      Merger(MergeOptions{.progress = false}).write_folder(plan, out);
    } catch (const Error& e) {
      error = e.what();
    }
    if (!expect.merged) {
      EXPECT_NE(error.find(expect.refusal), std::string::npos) << "error: '" << error << "'";
      EXPECT_FALSE(fs::exists(out));
      continue;
    }
    ASSERT_EQ(error, "");
    EXPECT_EQ(static_cast<int>(warnings.size()), expect.warnings)
        << (warnings.empty() ? "" : warnings[0]);
    if (!python_with_numpy().empty()) {  // every method, every value, against the Python reference
      const fs::path work = root / "ref" / file.stem();
      fs::create_directories(work);
      EXPECT_EQ(reference_mismatch(plan, out, work), "");
      ++referenced;
    }
    Model merged = Model::open(out.string());
    Reader read;
    for (const auto& spec : expected_tensors(merged.config, DType::F32)) {
      auto got = read(out, spec.name);
      for (float v : got) ASSERT_TRUE(std::isfinite(v)) << spec.name;
      if (expect.check == "runs") continue;
      auto want = expected_values(expect, config, dirs, spec.name, read);
      ASSERT_EQ(want.size(), got.size()) << spec.name;
      for (size_t i = 0; i < got.size(); ++i)  // rounded once to the 16-bit output dtype
        ASSERT_NEAR(got[i], want[i], std::fabs(want[i]) * 0x1p-7 + 1e-6)
            << spec.name << " [" << i << "]";
    }
  }
  fs::current_path(cwd);
  fs::remove_all(root);
  if (python_with_numpy().empty())
    GTEST_SKIP()
        << "no python3 with numpy: merged configs were checked only by the C++ recomputation"
           " (linear, task_arithmetic, slerp, passthrough) and for finite values";
  std::printf("%zu merged configs held to tools/fixtures/merge_reference.py\n", referenced);
}

}  // namespace
}  // namespace evomerge
