// chat_template: mergekit's built-in names, `auto` (the most common template among the inputs) and
// literal templates, written into the merged folder's tokenizer_config.json.
#include "merge/chat_templates.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/progress.h"
#include "common/test_util.h"
#include "io/files.h"
#include "merge/merge.h"
#include "merge/test_models.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing_util::error_of;

const std::string kChatml =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>' + "
    "'\\n'}}{% endfor %}\n{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif "
    "%}\n";

class ChatTemplates : public ::testing::Test {
 protected:
  void SetUp() override {
    Progress::set_global_enabled(false);
    root_ = fs::temp_directory_path() /
            ("evomerge_chat_test_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path dir_with(const std::string& name, const std::string& tokenizer_config) {
    fs::path d = root_ / name;
    fs::create_directories(d);
    write_file_atomic(d / "tokenizer_config.json", tokenizer_config);
    return d;
  }
  fs::path root_;
};

TEST_F(ChatTemplates, BuiltinNamesAreMergekitsFiles) {
  EXPECT_EQ(builtin_chat_template_names(),
            (std::vector<std::string>{"alpaca", "chatml", "exaone", "llama3", "mistral"}));
  EXPECT_EQ(*builtin_chat_template("chatml"),
            kChatml);  // mergekit/_data/chat_templates/chatml.jinja
  EXPECT_TRUE(builtin_chat_template("llama3")->starts_with("{% set loop_messages = messages %}\n"));
  EXPECT_TRUE(builtin_chat_template("mistral")->ends_with("{%- endfor %}\n"));
  EXPECT_FALSE(builtin_chat_template("vicuna"));
  std::vector<std::string> w;
  EXPECT_EQ(resolve_chat_template("alpaca", {}, "c.yml", w),
            std::string(*builtin_chat_template("alpaca")));
}

TEST_F(ChatTemplates, ModelTemplateFromEachPlaceTransformersReads) {
  EXPECT_EQ(model_chat_template(dir_with("s", R"({"chat_template": "{{ a }}"})")), "{{ a }}");
  EXPECT_EQ(
      model_chat_template(dir_with("l", R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                                                     {"name": "default", "template": "D"}]})")),
      "D");
  EXPECT_EQ(model_chat_template(dir_with("none", R"({"bos_token": "<s>"})")), std::nullopt);
  fs::path j = dir_with("j", R"({"chat_template": "old"})");
  write_file_atomic(j / "chat_template.jinja", "{{ new }}\n");
  EXPECT_EQ(model_chat_template(j), "{{ new }}\n");  // the .jinja file wins, as in transformers
  std::string e = error_of([&] { model_chat_template(dir_with("bad", "{not json")); });
  EXPECT_NE(e.find("bad/tokenizer_config.json: not valid JSON"), std::string::npos) << e;
  e = error_of([&] { model_chat_template(dir_with("num", R"({"chat_template": 3})")); });
  EXPECT_NE(e.find("field 'chat_template' must be a string"), std::string::npos) << e;
}

TEST_F(ChatTemplates, AutoPicksTheMostCommonStrippedTemplate) {
  const std::string x = "{% for m in messages %}X{% endfor %}",
                    y = "{% for m in messages %}Y{% endfor %}";
  std::vector<fs::path> dirs = {dir_with("a", json{{"chat_template", y}}.dump()),
                                dir_with("b", json{{"chat_template", x + "\n"}}.dump()),
                                dir_with("c", json{{"chat_template", "  " + x}}.dump()),
                                dir_with("d", "{}"), dir_with("e", "{broken")};
  std::vector<std::string> w;
  EXPECT_EQ(resolve_chat_template("auto", dirs, "c.yml", w), x);  // 2 votes (stripped) against 1
  ASSERT_EQ(w.size(), 1u);                                        // the unreadable one is skipped
  EXPECT_NE(w[0].find("c.yml: chat_template: auto: skipping"), std::string::npos) << w[0];
  // One vote each: the first in config order, as Counter.most_common.
  std::vector<fs::path> tie = {dirs[0], dirs[1]};
  EXPECT_EQ(resolve_chat_template("auto", tie, "c.yml", w), y);
  std::vector<fs::path> none = {dirs[3]};
  EXPECT_EQ(resolve_chat_template("auto", none, "c.yml", w), "");
}

TEST_F(ChatTemplates, InvalidNamesAreRefusedAsMergekitDoes) {
  std::vector<std::string> w;
  std::string e = error_of([&] { resolve_chat_template("vicuna", {}, "c.yml", w); });
  EXPECT_EQ(e,
            "[chat-template] c.yml: chat_template: 'vicuna' is neither a built-in name (auto, "
            "alpaca, chatml, exaone, "
            "llama3, mistral) nor a Jinja template (>= 20 characters with '{')");
  EXPECT_EQ(resolve_chat_template("{{ messages[0].content }}", {}, "c.yml", w),
            "{{ messages[0].content }}");
}

TEST_F(ChatTemplates, MergedFolderCarriesTheTemplateInTokenizerConfig) {
  testing::make_tiny_model(root_ / "a", 1);
  testing::make_tiny_model(root_ / "b", 2);
  write_file_atomic(root_ / "a" / "chat_template.jinja",
                    "{{ stale }}");  // the donor's own: replaced
  write_file_atomic(root_ / "b" / "tokenizer_config.json", json{{"chat_template", kChatml}}.dump());
  auto merge = [&](const std::string& setting, const std::string& out) {
    std::string yaml = "merge_method: linear\nchat_template: " + setting +
                       "\nmodels:\n  - {model: " + (root_ / "a").string() +
                       ", parameters: {weight: 1}}\n  - {model: " + (root_ / "b").string() +
                       ", parameters: {weight: 1}}\n";
    merge_to_folder(parse_merge_config(yaml, "c.yml"), root_ / out,
                    MergeOptions{.progress = false});
    return json::parse(read_text_file(root_ / out / "tokenizer_config.json"));
  };
  json named = merge("llama3", "named");
  EXPECT_EQ(named["chat_template"], std::string(*builtin_chat_template("llama3")));
  EXPECT_EQ(named["model_max_length"], 64);  // the donor's other fields are kept
  EXPECT_FALSE(fs::exists(root_ / "named" / "chat_template.jinja"));
  // auto: a has "{{ stale }}" (its .jinja), b has chatml: one vote each, a comes first.
  EXPECT_EQ(merge("auto", "auto")["chat_template"], "{{ stale }}");
  fs::remove(root_ / "a" / "chat_template.jinja");
  EXPECT_EQ(merge("auto", "auto2")["chat_template"],
            kChatml.substr(0, kChatml.size() - 1));  // stripped
  EXPECT_FALSE(fs::exists(root_ / "auto2" / "chat_template.jinja"));
}

}  // namespace
}  // namespace evomerge
