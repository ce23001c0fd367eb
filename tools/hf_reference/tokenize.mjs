// Independent reference tokenizer for bitsweep's tests: Hugging Face transformers.js (pure JS).
// Its regexes run as JS RegExp, whose \s differs from Oniguruma's (the one `tokenizers` uses) on
// U+0085 and U+FEFF, and it matches single_word/normalized added tokens unlike `tokenizers`;
// tokenize_rust.mjs runs `tokenizers` itself. Loads TOKENIZER_DIR only; nothing is fetched.
// usage: node tokenize.mjs TOKENIZER_DIR INPUT_JSON
//   INPUT_JSON holds a JSON array of strings; prints a JSON array of id arrays
//   (no special tokens added, as `tokenizer(text).input_ids` for Qwen3).
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { PreTrainedTokenizer } from '@huggingface/transformers';

const [dir, input] = process.argv.slice(2);
if (!dir || !input) {
  console.error('usage: node tokenize.mjs TOKENIZER_DIR INPUT_JSON');
  process.exit(2);
}
const tokenizerJson = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
const configPath = join(dir, 'tokenizer_config.json');
const config = existsSync(configPath) ? JSON.parse(readFileSync(configPath, 'utf8')) : {};
const tokenizer = new PreTrainedTokenizer(tokenizerJson, config);
const texts = JSON.parse(readFileSync(input, 'utf8'));
const out = texts.map((t) => tokenizer.encode(t, { add_special_tokens: false }));
process.stdout.write(JSON.stringify(out));
