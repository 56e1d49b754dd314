"""A tiny model directory synthesised offline: what a Dynamo worker and frontend read of a model (tokenizer, chat
template, architecture config) without weights. The mocker engine never loads weights, so nothing else is needed."""
import json
from pathlib import Path

# Byte-level BPE over a small corpus: enough merges that prompts tokenise to a few tokens per word, and every byte
# still has a token (the byte-level alphabet), so any prompt AIPerf synthesises round-trips.
_CORPUS = ["the quick brown fox jumps over the lazy dog", "inference serving on kubernetes with dynamo",
           "time to first token and inter token latency", "hello world how are you today"]
TRAINED_VOCAB = 1024
# The mocker emits token ids 1000..31999 whatever the tokenizer (lib/mocker/src/live.rs deterministic_output_tokens,
# ai-dynamo/dynamo@2a6da14c): every one must decode to text, or the frontend streams empty deltas.
VOCAB_SIZE = 32768
CHAT_TEMPLATE = ("{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
SPECIAL_TOKENS = ["<|bos|>", "<|eos|>"]


def synthesise(directory: Path, max_model_len: int = 16384) -> Path:
    """Write tokenizer.json, tokenizer_config.json, config.json and generation_config.json into `directory`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=TRAINED_VOCAB, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_CORPUS * 8, trainer=trainer)
    spec = json.loads(tokenizer.to_str())
    vocab_map = spec["model"]["vocab"]
    for token_id in range(len(vocab_map), VOCAB_SIZE):  # words no merge reaches: decodable, never produced by encoding
        vocab_map[f"\u0120w{token_id}"] = token_id
    (directory / "tokenizer.json").write_text(json.dumps(spec))
    bos, eos = (tokenizer.token_to_id(token) for token in SPECIAL_TOKENS)
    vocab = len(vocab_map)
    files = {
        "tokenizer_config.json": {"bos_token": SPECIAL_TOKENS[0], "eos_token": SPECIAL_TOKENS[1],
                                  "model_max_length": max_model_len, "chat_template": CHAT_TEMPLATE,
                                  "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False},
        "config.json": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab,
                        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": max_model_len,
                        "bos_token_id": bos, "eos_token_id": eos, "torch_dtype": "bfloat16"},
        "generation_config.json": {"bos_token_id": bos, "eos_token_id": eos},
    }
    for name, content in files.items():
        (directory / name).write_text(json.dumps(content, indent=1))
    return directory
