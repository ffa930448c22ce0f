// The one table formatter and the tables built with it (results.md, the terminal's final table,
// eval's table), each against its exact expected text.
#include <gtest/gtest.h>

#include "report/eval_table.h"
#include "report/final_table.h"
#include "report/table.h"

using namespace evomerge;
using namespace evomerge::report;
using json = nlohmann::json;

namespace {

FinalResult final_row(FinalKind kind, std::string label, double score, double lo, double hi,
                      json tasks, json details = json::object()) {
  FinalResult r;
  r.kind = kind;
  r.label = std::move(label);
  r.split = "test";
  r.score = score, r.ci_low = lo, r.ci_high = hi;
  r.task_scores = std::move(tasks);
  r.details = std::move(details);
  return r;
}

std::vector<FinalResult> small_table() {
  return {
      final_row(FinalKind::Parent, "parent: math", 0.5, 0.25, 0.75, {{"gsm", 0.5}}),
      final_row(FinalKind::Uniform, "uniform ties w=0.5", 0.625, 0.375, 0.8125, {{"gsm", 0.625}}),
      final_row(FinalKind::EvolvedPs, "evolved PS (ps #1) [winner on opt]", 0.75, 0.5, 0.875,
                {{"gsm", 0.75}, {"ja", nullptr}},
                {{"winner", true},
                 {"selected_on", "opt"},
                 {"paired",
                  {{"uniform ties w=0.5",
                    {{"difference", 0.125}, {"ci", {-0.0625, 0.3125}}, {"items", 8}}},
                   {"parent: math", {{"difference", 0.25}, {"ci", {0.0, 0.5}}, {"items", 8}}}}}})};
}

json config_with_grid(const std::string& method) {
  return {{"ps", {{"method", method}}}, {"final", {{"uniform_grid", {0.5}}}}};
}

}  // namespace

TEST(Table, MarkdownTextAndHtmlOfTheSameCells) {
  Table t;
  t.headers = {"name", "n"};
  t.align = {Table::Align::Left, Table::Align::Right};
  t.rows = {{"a|b", "7"}, {"long name", "12"}, {"short"}};
  EXPECT_EQ(to_markdown(t),
            "| name | n |\n|---|---|\n| a\\|b | 7 |\n| long name | 12 |\n| short |  |\n");
  EXPECT_EQ(to_text(t),
            "name        n\n"
            "a|b         7\n"
            "long name  12\n"
            "short\n");
  EXPECT_EQ(to_html(t),
            "<table><tr><th>name</th><th>n</th></tr>\n"
            "<tr><td>a|b</td><td class=\"num\">7</td></tr>\n"
            "<tr><td>long name</td><td class=\"num\">12</td></tr>\n"
            "<tr><td>short</td><td class=\"num\"></td></tr>\n</table>\n");
}

TEST(Table, TextWidthsCountCharactersNotBytes) {
  Table t;
  t.headers = {"model", "x"};
  t.rows = {{"\xc3\xa9t\xc3\xa9", "1"}, {"abcd", "2"}};  // "été": 3 characters, 5 bytes
  EXPECT_EQ(to_text(t), "model  x\n\xc3\xa9t\xc3\xa9    1\nabcd   2\n");
}

TEST(FinalTable, ResultsMarkdownIsTheTableThenThePairedDifferences) {
  const auto rows = small_table();
  EXPECT_EQ(results_markdown(rows, config_with_grid("ties")),
            "# evomerge evolve: final table\n\n"
            "| model | split | score | 95% CI | tasks |\n|---|---|---|---|---|\n"
            "| parent: math | test | 0.500 | [0.250, 0.750] | gsm: 0.500 |\n"
            "| uniform ties w=0.5 | test | 0.625 | [0.375, 0.812] | gsm: 0.625 |\n"
            "| evolved PS (ps #1) [winner on opt] | test | 0.750 | [0.500, 0.875] | gsm: 0.750, "
            "ja: - |\n"
            "\nPaired differences on the test split (the same items scored by both):\n\n"
            "| comparison | difference | 95% CI | items |\n|---|---|---|---|\n"
            "| winner - parent: math | +0.250 | [+0.000, +0.500] | 8 |\n"
            "| winner - uniform ties w=0.5 | +0.125 | [-0.062, +0.312] | 8 |\n");
}

TEST(FinalTable, TerminalTextAlignsTheSameRows) {
  EXPECT_EQ(to_text(paired_table(small_table())),
            "comparison                   difference  95% CI            items\n"
            "winner - parent: math            +0.250  [+0.000, +0.500]      8\n"
            "winner - uniform ties w=0.5      +0.125  [-0.062, +0.312]      8\n");
}

TEST(FinalTable, SaysWhenNoUniformMergeMadeIt) {
  auto rows = small_table();
  rows.erase(rows.begin() + 1);  // every grid point scored 0: no uniform row
  rows[1].details.erase("paired");
  const std::string md = results_markdown(rows, config_with_grid("ties"));
  EXPECT_EQ(md.substr(md.find("\nNo best")),
            "\nNo best uniform merge: every grid point scores 0 on opt.\n");
  EXPECT_EQ(md.find("Paired"), std::string::npos);
  // slerp has no uniform grid, and no grid means nothing was asked for: no note.
  EXPECT_EQ(results_markdown(rows, config_with_grid("slerp")).find("No best"), std::string::npos);
  EXPECT_EQ(results_markdown(rows, json::object()).find("No best"), std::string::npos);
}

TEST(EvalTable, TasksMetricsTotalAndNotes) {
  eval::ScoreReport rep;
  eval::TaskScore a;
  a.task = "gsm";
  a.split = "test";
  a.metric = "exact_match";
  a.score = 0.5;
  a.ci = {0.25, 0.75};
  a.scored = 8;
  a.metrics = {{"exact_match", 0.5}, {"flexible", 0.625}};
  eval::TaskScore b;
  b.task = "wiki";
  b.split = "test";
  b.metric = "word_perplexity";
  b.higher_is_better = false;
  b.score = 12.5;
  b.ci = {11.25, 13.75};
  b.scored = 4;
  b.metrics = {{"word_perplexity", 12.5}, {"bits_per_byte", 1.5}};
  b.note = "rendered with the tokenizer's template";
  rep.tasks = {a, b};
  rep.total = 0.5;
  rep.total_ci = {0.25, 0.75};
  EXPECT_EQ(eval_table_text("m/folder", rep, {{2, false}, {1, false}}, "items.jsonl"),
            "candidate  m/folder\n\n"
            "task  split  n  weight  metric             score  95% CI\n"
            "gsm   test   8       2  exact_match       50.00%  [25.00%, 75.00%]\n"
            "                        flexible          62.50%\n"
            "wiki  test   4       1  word_perplexity  12.5000  [11.2500, 13.7500]\n"
            "                        bits_per_byte     1.5000\n"
            "\ntotal (weighted mean of accuracy tasks) 50.00%  95% CI [25.00%, 75.00%]\n"
            "\nnote (wiki): rendered with the tokenizer's template\n"
            "\nper-item results: items.jsonl\n");
}

TEST(EvalTable, AFailedTaskHasNoScoreAndNoTotal) {
  eval::ScoreReport rep;
  eval::TaskScore ext;
  ext.task = "judge";
  ext.split = "test";
  ext.metric = "score";
  ext.failed = true;
  ext.error = "no JSON object";
  eval::TaskScore ok;
  ok.task = "gsm";
  ok.split = "test";
  ok.metric = "acc";
  ok.score = 1;
  ok.ci = {0.5, 1};
  ok.scored = 2;
  rep.tasks = {ext, ok};
  rep.failed = true;
  EXPECT_EQ(eval_table_text("merge c.yml (linear, 2 models)", rep, {{1, true}, {1, false}}, ""),
            "candidate  merge c.yml (linear, 2 models)\n\n"
            "task   split  n  weight  metric    score  95% CI\n"
            "judge  test   -       1  score    FAILED  no JSON object\n"
            "gsm    test   2       1  acc     100.00%  [50.00%, 100.00%]\n"
            "\ntotal: none (a task failed; a failed evaluation is never a score)\n");
}
