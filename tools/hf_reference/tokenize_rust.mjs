// Second independent reference for bitsweep's tests: Hugging Face `tokenizers` itself (the Rust
// library, 0.22.2, with its Oniguruma regex engine), through the prebuilt N-API binding
// @anush008/tokenizers. transformers.js re-implements the pipeline in JS and its regex \s differs
// from Oniguruma's (U+0085, U+FEFF) and its added-token matching from tokenizers' (single_word,
// normalized); this one is the library the Python `transformers` tokenizers wrap.
// usage: node tokenize_rust.mjs TOKENIZER_DIR INPUT_JSON
//   INPUT_JSON holds a JSON array of strings; prints a JSON array of id arrays (no special
//   tokens added). Reads TOKENIZER_DIR/tokenizer.json only; nothing is fetched.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tokenizers from '@anush008/tokenizers';

const [dir, input] = process.argv.slice(2);
if (!dir || !input) {
  console.error('usage: node tokenize_rust.mjs TOKENIZER_DIR INPUT_JSON');
  process.exit(2);
}
const tokenizer = tokenizers.Tokenizer.fromFile(join(dir, 'tokenizer.json'));
const texts = JSON.parse(readFileSync(input, 'utf8'));
const out = [];
for (const text of texts) {
  const encoding = await tokenizer.encode(text, null, { addSpecialTokens: false });
  out.push(Array.from(encoding.getIds()));
}
process.stdout.write(JSON.stringify(out));
