#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cb {

/// Text for servers that take text: synthetic prompts are words drawn from a fixed list of
/// common English words chosen to be single tokens in the usual BPE vocabularies (Llama 3,
/// GPT-4o, Qwen), so a prompt of N words is about N tokens there (`usage` says exactly).
/// `serve-model` tokenizes one word to one token, so there N words are N tokens.
int64_t WordCount();
/// Word `i` of the list (i modulo WordCount()), with no leading space.
std::string_view Word(int64_t i);

/// The prompt text of synthetic token ids (as SyntheticToken gives them over WordCount()
/// values): the words joined by single spaces.
std::string WordsText(const std::vector<int32_t>& words);

/// Words of `text` (runs of non-space characters).
int64_t CountWords(std::string_view text);

/// serve-model's tokenizer: one token per word, its id a hash of the word modulo `vocab`.
std::vector<int32_t> WordTokenize(std::string_view text, int64_t vocab);
/// serve-model's detokenizer: " word" for a token id.
std::string TokenText(int32_t token);

}  // namespace cb
