#!/usr/bin/env python3
"""Cross-check evomerge's output folders and engine against Hugging Face transformers.

For each case (a model folder + the JSON that `evomerge score FOLDER --text-file T --json` printed
for it), load the folder with transformers (f32, eager attention), recompute the per-token
log-probabilities of the same token ids, and compare; also tokenize the text with AutoTokenizer and
compare the ids with evomerge's. Needs torch + transformers (run where they are installed):

  python3 tools/hfcheck/check_transformers.py CASES.json OUT.json

CASES.json: [{"label": ..., "folder": ..., "score_json": ..., "text_file": ...}, ...]
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    cases = json.load(open(sys.argv[1]))
    results = []
    for case in cases:
        row = {"label": case["label"], "folder": case["folder"]}
        try:
            model = AutoModelForCausalLM.from_pretrained(
                case["folder"], torch_dtype=torch.float32, attn_implementation="eager")
            model.eval()
            ours = json.load(open(case["score_json"]))
            ids = [ours["first_token"]["id"]] + [t["id"] for t in ours["tokens"]]
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].double()
            logprobs = torch.log_softmax(logits, dim=-1)
            theirs = [logprobs[i, ids[i + 1]].item() for i in range(len(ids) - 1)]
            mine = [t["logprob"] for t in ours["tokens"]]
            row["tokens"] = len(mine)
            row["max_abs_logprob_diff"] = max(abs(a - b) for a, b in zip(theirs, mine))
            row["sum_logprob_transformers"] = sum(theirs)
            row["sum_logprob_evomerge"] = sum(mine)
            row["layers"] = model.config.num_hidden_layers
            tok = AutoTokenizer.from_pretrained(case["folder"])
            text = open(case["text_file"], encoding="utf-8").read()
            row["tokenizer_ids_equal"] = tok(text)["input_ids"] == ids
        except Exception as e:  # report every case, even a failing one
            row["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(row), flush=True)
        results.append(row)
    json.dump(results, open(sys.argv[2], "w"), indent=2)


if __name__ == "__main__":
    main()
