// The tricky-string corpus, built programmatically so that invisible characters (ZWJ, NBSP, BOM,
// NEL, ...) are exact code points and never depend on an editor. Deterministic: same output on
// every run.
const cp = (...xs) => String.fromCodePoint(...xs);

export function corpus(specials) {
  const c = [];
  // Plain text and the known Llama-2 / SentencePiece anchors.
  c.push("Hello world", " Hello", "\n", "", " ", "  ", "Hello, my dog is cute", "hello  world", "The quick brown fox jumps over the lazy dog.");
  // Whitespace runs and mixed newlines.
  c.push("a\n\nb", "tabs\tand\t\tspaces", "trailing   ", "   leading", "\r\n windows\r\nlines\r\n",
         "mixed \n \r \t  newlines\n\n\n", "x \n\n y", "  \n  \n", "line1\n    indented\n\tTabbed", " \t \t", "a" + " ".repeat(17) + "b");
  // Contractions, case variants, and the case-folding edge (U+017F LONG S folds to 's' in Oniguruma).
  c.push("I'm, you're, he'll, they'd, it's, we've, don't", "I'M YOU'RE IT'S DON'T WE'VE", "'s 't 're 've 'm 'll 'd",
         "'S 'T 'RE 'VE 'M 'LL 'D", "it" + cp(0x27, 0x17F), "rock'n'roll", "'" + cp(0x17F) + "tuff", "DON'" + cp(0x17F) + "T", "x'" + cp(0x17F) + "s", "O'Neil's", "he's'nt");
  // Digits.
  c.push("12345", "1234567890", "3.14159", "year 2024, 1,000,000 people", "007 bond 0x1F", "a1b22c333d4444",
         cp(0x663, 0x664, 0x665) + " Arabic-Indic", cp(0x2460, 0x2461) + " circled", "Roman " + cp(0x216B), "x²+y³=z⁴", "½ ¾");
  // CJK and other scripts.
  c.push("你好，世界！", "日本語のテキストです。", "한국어 텍스트", "AI人工智能2024年", "中文 English 混合 text",
         "ភាសាខ្មែរ", "ភ្នំពេញ គឺជារាជធានី", "ภาษาไทย", "नमस्ते दुनिया", "مرحبا بالعالم", "שָׁלוֹם", "Ελληνικά κείμενο",
         "Привет, мир!", "Tiếng Việt có dấu");
  // Emoji: ZWJ sequences, skin tones, flags, keycaps, variation selectors.
  c.push(cp(0x1F44D), cp(0x1F468, 0x200D, 0x1F469, 0x200D, 0x1F467, 0x200D, 0x1F466), cp(0x1F3F3, 0xFE0F, 0x200D, 0x1F308),
         cp(0x1F44B, 0x1F3FD) + " hi", cp(0x1F1EF, 0x1F1F5) + cp(0x1F1FA, 0x1F1F8), "1" + cp(0xFE0F, 0x20E3),
         "I " + cp(0x2764, 0xFE0F) + " tokenizers " + cp(0x1F916) + cp(0x1F916) + cp(0x1F916), cp(0x1F9D1, 0x200D, 0x1F4BB) + " coder");
  // Combining marks and normalization (NFC composes e+U+0301 into U+00E9, Hangul jamo into a syllable).
  c.push("e" + cp(0x301) + "t" + cp(0x301), cp(0xC5) + " vs A" + cp(0x30A), cp(0xFB01) + "sh ligature", cp(0x1100, 0x1161, 0x11A8),
         "cafe" + cp(0x301) + " caf" + cp(0xE9), "Z" + cp(0x335, 0x321, 0x32D) + "algo");
  // Exotic whitespace and invisible characters (regex engines disagree on some of these: \s).
  c.push(cp(0xA0) + "nbsp" + cp(0xA0), cp(0x3000) + "ideographic space", "line" + cp(0x2028) + "sep", "nel" + cp(0x85) + "x",
         cp(0xFEFF) + "BOM start", "zero" + cp(0x200B) + "width", "a" + cp(0x200D) + "b", "thin" + cp(0x2009) + "space" + cp(0x202F) + "x",
         "soft" + cp(0xAD) + "hyphen", "ctrl" + cp(1, 2, 0x1F, 0x7F) + "chars", "bell" + cp(7) + "!",
         "a" + cp(0x85, 0x85, 0x85) + "b", "a " + cp(0xFEFF, 0xFEFF) + "!", "x" + cp(0x85) + " y", "p" + cp(0xFEFF) + " q", "end" + cp(0x85),
         "!" + cp(0x180E) + "?", "tab" + cp(0x1680, 0x1680) + "ogham");
  // Code, URLs, punctuation runs.
  c.push("def f(x):\n    return x**2  # square\n", "if (a && b) { c++; } else { d--; }", "https://example.com/path?q=1&r=2#frag",
         "!!!???...", "—–-‐", "«quotes» “smart” ‘single’", "<html><body>Hi</body></html>", "$$\\frac{a}{b}$$", "__init__ self._x",
         "email: someone@example.org", "C:\\Users\\name\\file.txt", ":-) ;-) <3");
  // Long words and repeats (exercise BPE merges and the word cache).
  c.push("a".repeat(41), "antidisestablishmentarianism", "supercalifragilisticexpialidocious " .repeat(3), "ab".repeat(30),
         "Mississippi Mississippi", "heeellllooooo");
  // Byte-fallback material for SentencePiece vocabularies: rare scripts and mathematical letters.
  c.push(cp(0x1D518, 0x1D52B, 0x1D526, 0x1D520, 0x1D52C, 0x1D521, 0x1D522), cp(0x10348) + " gothic", cp(0x13000) + " hieroglyph",
         "ꙮ multiocular", cp(0xE000) + " private use");
  // Special tokens in text (per tokenizer), glued, spaced and partial.
  for (const s of specials) {
    c.push(s, `${s}Hello`, `Hello ${s} world`, ` ${s} `, `${s}${s}`, `x${s}y`, s.slice(0, -1) + " partial", `\n${s}\n`);
  }
  // ASCII printable, in one string.
  let ascii = "";
  for (let i = 32; i < 127; ++i) ascii += cp(i);
  c.push(ascii);
  // Deterministic random strings from pools of the characters above (xorshift32, fixed seed).
  const pools = [" ", "  ", "\n", "\t", "a", "b", "Z", "é", "ß", "ſ", "'", "'s", "'LL", "1", "23", "456", ".", ",", "!", "?", "-", "_",
                 "你", "好", "の", "한", "ខ្មែ", "ไ", "ע", cp(0x1F600), cp(0x1F468, 0x200D, 0x1F4BB), cp(0x200D), cp(0xA0), cp(0x3000),
                 "\r\n", "e" + cp(0x301), "Hello", " world", "the", " of", "ing", "<", ">", "|", "/", "\\", "\"", "{", "}"];
  let state = 0x9e3779b9;
  const rnd = (n) => {
    state ^= state << 13; state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5; state >>>= 0;
    return state % n;
  };
  for (let k = 0; k < 150; ++k) {
    const len = 1 + rnd(24);
    let s = "";
    for (let i = 0; i < len; ++i) s += pools[rnd(pools.length)];
    if (specials.length && rnd(5) === 0) s += specials[rnd(specials.length)] + pools[rnd(pools.length)];
    c.push(s);
  }
  return c;
}
